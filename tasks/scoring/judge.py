"""Score one rendered output for its phase, and decide its job.

Only the metrics the phase requires (QualityThresholds.required_metrics) are computed: each
costs a model pass, and an optional metric that cannot run must not block a job.

Each metric that cannot run (model weights missing offline, no reference embeddings, no face)
becomes a could-not-judge result with the reason, never a crash and never a zero; the
QualityThresholds block then says whether could-not-judge blocks the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.briefs import CutBrief
from db.vocabulary import Phase
from tasks.scoring.gates import JobDecision, decide_job
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.results import MetricResult

logger = logging.getLogger(__name__)

FACE = "face_similarity"
KEYFRAME_METRICS = ("face_similarity", "aesthetic", "style_adherence")
CLIP_METRICS = ("temporal_lpips", "motion_smoothness", "subject_consistency")


def _environmental(metric: str, reason: str, subject: str | None = None) -> MetricResult:
    """Could not judge for a reason no new seed fixes (a model or a reference is missing)."""
    return MetricResult(
        metric=metric, value=None, subject=subject, reason=reason, details={"cause": "environment"}
    )


def _guard(
    metric: str, compute: Callable[[], Any], subject: str | None = None
) -> list[MetricResult]:
    """Run one metric; a missing model is could-not-judge with the loader's own message."""
    try:
        result = compute()
    except ModelUnavailable as exc:  # FaceModelUnavailable too
        return [_environmental(metric, str(exc), subject)]
    return list(result) if isinstance(result, list) else [result]


def face_results(image: Any, brief: CutBrief, models: ScoringModels) -> list[MetricResult]:
    from tasks.scoring.face_embedder import load_face_embedder
    from tasks.scoring.faces import face_similarity

    cast = {m.slug: np.asarray(m.reference_embeddings, dtype=np.float32) for m in brief.cast}
    results = [
        _environmental(
            FACE,
            f"no reference face embeddings for {slug!r}: approve a character sheet "
            "or embed its reference images",
            slug,
        )
        for slug, refs in cast.items()
        if refs.size == 0
    ]
    usable = {slug: refs for slug, refs in cast.items() if refs.size}
    if usable:
        try:
            embedder = load_face_embedder(models)
        except ModelUnavailable as exc:  # FaceModelUnavailable too
            results += [_environmental(FACE, str(exc), slug) for slug in usable]
        else:
            results += face_similarity(image, usable, embedder)
    return results


def score_keyframe(
    image: Any, brief: CutBrief, models: ScoringModels, wanted: set[str]
) -> list[MetricResult]:
    from tasks.scoring.aesthetic import aesthetic
    from tasks.scoring.style import style_adherence

    results = face_results(image, brief, models) if FACE in wanted and brief.cast else []
    if "aesthetic" in wanted:
        results += _guard("aesthetic", lambda: aesthetic(image, models))
    if "style_adherence" in wanted:
        results += _guard(
            "style_adherence",
            lambda: style_adherence(image, brief.style.style_references, models),
        )
    return results


def score_clip(
    frames: np.ndarray, brief: CutBrief, models: ScoringModels, wanted: set[str]
) -> list[MetricResult]:
    from tasks.scoring.temporal import motion_smoothness, subject_consistency, temporal_lpips

    metrics = {
        "temporal_lpips": lambda: temporal_lpips(frames, models),
        "motion_smoothness": lambda: motion_smoothness(frames, models=models),
        "subject_consistency": lambda: subject_consistency(frames, models),
    }
    return [r for name, run in metrics.items() if name in wanted for r in _guard(name, run)]


def required_metrics(phase: Phase, brief: CutBrief, thresholds: QualityThresholds) -> list[str]:
    """The phase's required metrics, less face similarity where nobody is cast."""
    required = list(thresholds.required_metrics.get(phase.value, []))
    if not brief.cast:
        required = [m for m in required if m != FACE]
    return required


def decide(
    results: list[MetricResult], phase: Phase, brief: CutBrief, thresholds: QualityThresholds
) -> JobDecision:
    """The job's decision: the phase's gates, with the cast's calibrated face thresholds."""
    face_thresholds = {m.slug: m.face_threshold for m in brief.cast if m.face_threshold is not None}
    return decide_job(
        results,
        phase,
        thresholds,
        face_thresholds=face_thresholds or None,
        required=required_metrics(phase, brief, thresholds),
    )
