"""Score one rendered output for its phase, and decide its job.

Only the metrics the phase requires (QualityThresholds.required_metrics) are computed: each
costs a model pass, and an optional metric that cannot run must not block a job.

Each metric that cannot run (model weights missing offline, no reference embeddings, no face,
or any exception inside the metric) becomes a could-not-judge result with the reason, never a
crash and never a zero; the QualityThresholds block then says whether could-not-judge blocks
the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.briefs import CastBrief, CutBrief
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


def _failed(metric: str, exc: Exception, subject: str | None = None) -> MetricResult:
    """A metric that raised: could not judge, with the exception as its reason.

    Counted as environmental: the same code on the next seed's output would most likely fail
    the same way, and a studio would rather look than spend renders on it."""
    logger.warning("%s raised %s: %s", metric, type(exc).__name__, exc, exc_info=exc)
    result = _environmental(metric, f"{metric} failed: {type(exc).__name__}: {exc}", subject)
    result.details["error"] = type(exc).__name__
    return result


def _guard(
    metric: str, compute: Callable[[], Any], subject: str | None = None
) -> list[MetricResult]:
    """Run one metric; a missing model or any error is could-not-judge with its reason."""
    try:
        result = compute()
    except ModelUnavailable as exc:  # FaceModelUnavailable too
        return [_environmental(metric, str(exc), subject)]
    except Exception as exc:  # a metric must never crash the task that judges a render
        return [_failed(metric, exc, subject)]
    return list(result) if isinstance(result, list) else [result]


def _no_references(member: CastBrief, model_name: str) -> str:
    others = sorted(m for m, refs in member.face_references.items() if refs)
    reason = f"no reference face embeddings for {member.slug!r} from {model_name}"
    if others:
        return reason + f" (only from {', '.join(others)}): embed its references with this model"
    return reason + ": approve a character sheet or embed its reference images"


def face_results(image: Any, brief: CutBrief, models: ScoringModels) -> list[MetricResult]:
    """Face similarity of each cast character against its references from the active model."""
    from tasks.scoring.face_embedder import load_face_embedder
    from tasks.scoring.faces import face_similarity

    models = models.for_project(brief.project_settings)
    if not any(refs for m in brief.cast for refs in m.face_references.values()):
        return [
            _environmental(FACE, _no_references(m, models.face_model), m.slug) for m in brief.cast
        ]
    try:
        embedder = load_face_embedder(models)
    except ModelUnavailable as exc:  # FaceModelUnavailable too
        return [_environmental(FACE, str(exc), m.slug) for m in brief.cast]
    except Exception as exc:
        return [_failed(FACE, exc, m.slug) for m in brief.cast]
    results, usable = [], {}
    for member in brief.cast:
        refs = np.asarray(member.references_for(embedder.name), dtype=np.float32)
        if refs.size:
            usable[member.slug] = refs
        else:
            results.append(_environmental(FACE, _no_references(member, embedder.name), member.slug))
    if usable:
        found = _guard(FACE, lambda: face_similarity(image, usable, embedder))
        if len(found) == 1 and found[0].subject is None:  # it raised: one line per character
            found = [found[0].model_copy(update={"subject": slug}) for slug in usable]
        published = getattr(embedder, "threshold", None)  # CCIP's, as a cosine
        if published is not None:
            for result in found:
                result.details["published_threshold"] = published
        results += found
    order = [m.slug for m in brief.cast]
    looks = {m.slug: m for m in brief.cast}
    for result in results:
        if (member := looks.get(result.subject or "")) is not None:
            # Which look, and so which references, this judgement was made against.
            result.details["look"] = member.look
            result.details["reference_images"] = list(member.reference_images)
    return sorted(results, key=lambda r: order.index(r.subject) if r.subject in order else 0)


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


def clip_loops(brief: CutBrief, override: str | None = None) -> bool:
    """Whether the cut's animation template closes the loop (last frame flows into the first):
    its ``closed_loop`` parameter, as the cut's overrides or the template's default set it.
    ``override``: the run's one template for every cut, when it has one."""
    from workflows.errors import WorkflowError
    from workflows.templating import template_manifest

    try:
        manifest = template_manifest(brief.template_for(Phase.ANIMATION, override))
    except (WorkflowError, OSError, ValueError):
        return False  # the render itself reports an unknown template
    spec = manifest.parameters.get("closed_loop")
    if spec is None:
        return False
    return bool(brief.overrides.get("closed_loop", spec.default))


def score_clip(
    frames: np.ndarray,
    brief: CutBrief,
    models: ScoringModels,
    wanted: set[str],
    *,
    loop: bool | None = None,
) -> list[MetricResult]:
    """The clip metrics ``wanted``; a looping template's seam (last -> first frame) counts in
    temporal LPIPS (``loop`` None: as the cut's template says, ``clip_loops``)."""
    from tasks.scoring.temporal import motion_smoothness, subject_consistency, temporal_lpips

    loops = clip_loops(brief) if loop is None else loop
    metrics = {
        "temporal_lpips": lambda: temporal_lpips(frames, models, loop=loops),
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


def cast_face_thresholds(
    brief: CutBrief, results: list[MetricResult]
) -> dict[str, tuple[float | None, str]]:
    """Per character: the production file's hand-set threshold, else the calibration of the
    face model that scored it (``MetricResult.model``), with how it was set."""
    faces = {r.subject: r for r in results if r.metric == FACE}
    thresholds: dict[str, tuple[float | None, str]] = {}
    for member in brief.cast:
        if member.face_threshold is not None:
            thresholds[member.slug] = (member.face_threshold, "set in the production file")
            continue
        face = faces.get(member.slug)
        calibration = member.face_calibrations.get(face.model if face else "")
        published = face.details.get("published_threshold") if face else None
        if published is not None and (calibration is None or calibration.threshold is None):
            thresholds[member.slug] = (
                float(published),
                f"{face.model}'s published threshold (not calibrated for {member.slug})",
            )
            continue
        if calibration is None:
            continue
        if calibration.threshold is None:
            thresholds[member.slug] = (
                None,
                f"not calibrated: {calibration.references} reference(s) from "
                f"{calibration.model_name}, too few to calibrate",
            )
        else:
            thresholds[member.slug] = (calibration.threshold, calibration.source())
    return thresholds


def decide(
    results: list[MetricResult], phase: Phase, brief: CutBrief, thresholds: QualityThresholds
) -> JobDecision:
    """The job's decision: the phase's gates, with the cast's calibrated face thresholds."""
    return decide_job(
        results,
        phase,
        thresholds,
        face_thresholds=cast_face_thresholds(brief, results) or None,
        required=required_metrics(phase, brief, thresholds),
    )
