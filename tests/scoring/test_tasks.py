"""The @task wrappers inside a real Prefect flow run."""

from __future__ import annotations

import numpy as np
from prefect import flow

from blocks.scoring import ScoringModels
from tasks.aesthetic import score_aesthetic, score_aesthetic_of_frames
from tasks.scores import MetricResult
from tasks.style import score_style_adherence
from tasks.temporal import (
    score_motion_smoothness,
    score_subject_consistency,
    score_temporal_lpips,
)
from tests.scoring.clips import background, linear_motion


def test_scoring_tasks_run_in_a_flow(prefect_harness: None, stand_in_models: ScoringModels) -> None:
    @flow
    def review_cut(models: ScoringModels) -> list[MetricResult]:
        frames = linear_motion(16)
        return [
            score_aesthetic(frames[0], models),
            score_aesthetic_of_frames(frames, models),
            score_style_adherence(frames[0], [background()], models),
            score_temporal_lpips(frames, models, loop=True),
            score_subject_consistency(frames, models),
            score_motion_smoothness(frames, None, models),
        ]

    results = review_cut(stand_in_models)
    assert [r.metric for r in results] == [
        "aesthetic",
        "aesthetic",
        "style_adherence",
        "temporal_lpips",
        "subject_consistency",
        "motion_smoothness",
    ]
    assert all(r.measured and np.isfinite(r.value) for r in results)


def test_missing_model_in_a_task_is_could_not_judge_not_a_crash(
    stand_in_models: ScoringModels,
) -> None:
    broken = stand_in_models.model_copy(update={"lpips_pnet_rand": False, "lpips_net": "vgg",
                                                "allow_downloads": False})  # fmt: skip
    result = score_temporal_lpips.fn(linear_motion(4), broken)
    if result.measured:  # vgg16's torchvision weights happen to be cached on this machine
        return
    assert "vgg16" in (result.reason or "")
