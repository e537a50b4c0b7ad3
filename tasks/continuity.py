"""Continuity between consecutive cuts of a scene that share a character: the last frame of cut
N against the first of cut N+1.

- ``continuity_identity`` (per shared character): ArcFace cosine between the character's face
  in the two frames (faces told apart with the character's reference embeddings, when it has
  any), through the scoring package's face_similarity;
- ``continuity_style``: CLIP image-image cosine of the two frames (style_adherence with the
  earlier frame as the only reference);
- ``continuity_colour``: intersection of the two frames' colour histograms (1 = same colours).

A metric that cannot be measured (no face model, no face) is could-not-judge with the reason.
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
from PIL import Image
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db import continuity as db_continuity
from db.engine import session_scope
from db.vocabulary import Verdict
from tasks.reel.footage import FootageError, decode
from tasks.scoring.results import MetricResult

IDENTITY, STYLE, COLOUR = "continuity_identity", "continuity_style", "continuity_colour"
HISTOGRAM_BINS = 8


def colour_continuity(before: Image.Image, after: Image.Image) -> MetricResult:
    """Histogram intersection over an 8x8x8 RGB histogram of each frame."""

    def histogram(image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB").resize((128, 72))).reshape(-1, 3) // (
            256 // HISTOGRAM_BINS
        )
        index = (pixels[:, 0] * HISTOGRAM_BINS + pixels[:, 1]) * HISTOGRAM_BINS + pixels[:, 2]
        counts = np.bincount(index, minlength=HISTOGRAM_BINS**3).astype(np.float64)
        return counts / counts.sum()

    value = float(np.minimum(histogram(before), histogram(after)).sum())
    return MetricResult(metric=COLOUR, value=value, model=f"rgb-histogram-{HISTOGRAM_BINS}")


def identity_continuity(
    before: Image.Image,
    after: Image.Image,
    shared: list[str],
    references: dict[str, list[list[float]]],
    models: ScoringModels,
) -> list[MetricResult]:
    from tasks.scoring.face_embedder import load_face_embedder, to_rgb_array
    from tasks.scoring.faces import face_similarity_from_faces, main_face
    from tasks.scoring.loading.errors import ModelUnavailable

    def unmeasured(slug: str, reason: str, model: str = "") -> MetricResult:
        return MetricResult(metric=IDENTITY, value=None, subject=slug, reason=reason, model=model)

    try:
        embedder = load_face_embedder(models)
    except ModelUnavailable as exc:
        return [unmeasured(slug, str(exc)) for slug in shared]
    faces_before = embedder.detect_and_embed(to_rgb_array(before))
    faces_after = embedder.detect_and_embed(to_rgb_array(after))
    results = []
    for slug in shared:
        refs = np.asarray(references.get(slug) or [], dtype=np.float32)
        if refs.size:
            (whose,) = face_similarity_from_faces(faces_before, {slug: refs}, model=embedder.name)
            index = whose.details.get("face_index")
            face = None if index is None else faces_before[index]
        else:
            face = main_face(faces_before)
        if face is None:
            reason = "no face in the earlier cut's last frame"
            results.append(unmeasured(slug, reason, embedder.name))
            continue
        (found,) = face_similarity_from_faces(
            faces_after, {slug: face.embedding[None, :]}, model=embedder.name
        )
        results.append(found.model_copy(update={"metric": IDENTITY}))
    return results


def style_continuity(before: Image.Image, after: Image.Image, models: ScoringModels):
    from tasks.scoring.loading.errors import ModelUnavailable
    from tasks.scoring.style import style_adherence

    try:
        found = style_adherence(after, [before], models)
    except ModelUnavailable as exc:
        return MetricResult(metric=STYLE, value=None, reason=str(exc))
    return found.model_copy(update={"metric": STYLE})


def _row(
    pair: db_continuity.ContinuityPair, result: MetricResult, thresholds: QualityThresholds
) -> dict[str, Any]:
    gate = thresholds.continuity_gates.get(result.metric)
    if result.value is None or gate is None:
        verdict = Verdict.COULD_NOT_JUDGE
    else:
        verdict = Verdict.PASSED if gate.passes(result.value) else Verdict.FAILED
    return {
        "cut_id": pair.current.cut_id,
        "previous_cut_id": pair.previous.cut_id,
        "job_id": pair.current.footage.job_id,
        "previous_job_id": pair.previous.footage.job_id,
        "metric": result.metric,
        "subject": result.subject or "",
        "value": result.value,
        "threshold": gate.threshold if gate else None,
        "comparator": gate.comparator if gate else ">=",
        "verdict": verdict,
        "model": result.model,
        "reason": result.reason,
        "details": {
            "previous": pair.previous.label,
            "cut": pair.current.label,
            **{k: v for k, v in result.details.items() if k in ("face_index", "faces_found")},
        },
    }


def pair_scores(
    pair: db_continuity.ContinuityPair, models: ScoringModels, thresholds: QualityThresholds
) -> list[dict[str, Any]]:
    """The rows to store for one pair of cuts."""
    try:
        before = decode(pair.previous.footage.path)[-1]
        after = decode(pair.current.footage.path)[0]
    except FootageError as exc:
        unmeasured = [MetricResult(metric=IDENTITY, value=None, subject=s, reason=str(exc))
                      for s in pair.shared]  # fmt: skip
        unmeasured += [MetricResult(metric=m, value=None, reason=str(exc)) for m in (STYLE, COLOUR)]
        return [_row(pair, r, thresholds) for r in unmeasured]
    results = identity_continuity(before, after, pair.shared, pair.references, models)
    results += [style_continuity(before, after, models), colour_continuity(before, after)]
    return [_row(pair, r, thresholds) for r in results]


class ContinuityCheck(BaseModel):
    """One line per pair and metric, for the quality gate and its report."""

    label: str  # "E01S01C02 after E01S01C01: continuity_style"
    verdict: Verdict
    value: float | None


def score_episode_continuity(
    episode_id: int, models: ScoringModels, thresholds: QualityThresholds
) -> list[ContinuityCheck]:
    """Measure and store the continuity of every compared pair of the episode."""
    with session_scope() as session:
        pairs = db_continuity.continuity_pairs(session, episode_id)
    rows = [row for pair in pairs for row in pair_scores(pair, models, thresholds)]
    with session_scope() as session:
        db_continuity.store_continuity(session, episode_id, rows)
    return [
        ContinuityCheck(
            label=f"{r['details']['cut']} after {r['details']['previous']}: {r['metric']}"
            + (f" ({r['subject']})" if r["subject"] else ""),
            verdict=r["verdict"],
            value=r["value"],
        )
        for r in rows
    ]


@task(name="score-continuity", cache_policy=NO_CACHE)
async def score_continuity(
    episode_id: int, models: ScoringModels, thresholds: QualityThresholds
) -> list[ContinuityCheck]:
    return await anyio.to_thread.run_sync(
        score_episode_continuity, episode_id, models, thresholds
    )
