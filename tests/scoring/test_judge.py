"""Every clip metric measures, and the judge turns a missing model into could-not-judge."""

from __future__ import annotations

import numpy as np
from PIL import Image

from blocks.scoring import ScoringModels
from db.briefs import CutBrief
from tasks.scoring.aesthetic import aesthetic, aesthetic_of_frames
from tasks.scoring.judge import score_clip, score_keyframe
from tasks.scoring.results import MetricResult
from tasks.scoring.style import style_adherence
from tasks.scoring.temporal import motion_smoothness, subject_consistency, temporal_lpips
from tests.scoring.clips import background, linear_motion


def test_every_metric_measures_a_moving_clip(stand_in_models: ScoringModels) -> None:
    frames = linear_motion(16)
    results: list[MetricResult] = [
        aesthetic(frames[0], stand_in_models),
        aesthetic_of_frames(frames, stand_in_models),
        style_adherence(frames[0], [background()], stand_in_models),
        temporal_lpips(frames, stand_in_models, loop=True),
        subject_consistency(frames, stand_in_models),
        motion_smoothness(frames, None, stand_in_models),
    ]
    assert [r.metric for r in results] == [
        "aesthetic",
        "aesthetic",
        "style_adherence",
        "temporal_lpips",
        "subject_consistency",
        "motion_smoothness",
    ]
    assert all(r.measured and np.isfinite(r.value) for r in results)


def test_judge_scores_only_the_wanted_metrics(
    stand_in_models: ScoringModels, brief: CutBrief, tmp_path
) -> None:
    frames = linear_motion(8)
    style = tmp_path / "style.png"
    Image.fromarray(background()).save(style)
    brief = brief.model_copy(update={"style": brief.style.model_copy(
        update={"style_references": [str(style)]})})  # fmt: skip
    keyframe = score_keyframe(frames[0], brief, stand_in_models, {"aesthetic", "style_adherence"})
    clip = score_clip(frames, brief, stand_in_models, {"temporal_lpips", "subject_consistency"})
    assert [r.metric for r in keyframe] == ["aesthetic", "style_adherence"]
    assert [r.metric for r in clip] == ["temporal_lpips", "subject_consistency"]
    assert all(r.measured and np.isfinite(r.value) for r in keyframe + clip)
    assert score_clip(frames, brief, stand_in_models, set()) == []


def test_missing_model_in_the_judge_is_could_not_judge_not_a_crash(
    stand_in_models: ScoringModels, brief: CutBrief
) -> None:
    broken = stand_in_models.model_copy(update={"lpips_backbone": None, "lpips_net": "vgg",
                                                "allow_downloads": False})  # fmt: skip
    [result] = score_clip(linear_motion(4), brief, broken, {"temporal_lpips"})
    if result.measured:  # vgg16's torchvision weights happen to be cached on this machine
        return
    assert "vgg16" in (result.reason or "")
    assert result.details["cause"] == "environment"
