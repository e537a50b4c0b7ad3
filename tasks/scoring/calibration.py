"""A face-similarity threshold per character, calibrated from the reference library.

The face embedder is trained on photographs; on anime faces its cosines shift per character
(a character with a plain design scores high against everybody). So the threshold is set
from two distributions, scored exactly as ``face_similarity`` scores a render:

* same character ("genuine"): each reference against the character's *other* references
  (leave-one-out), reduced with the same max / mean;
* other characters ("impostor"): each reference of every other character against this
  character's references, reduced the same way.

Suggested threshold: when every same-character score is above every other-character score,
the midpoint between the highest other-character score and the lowest same-character score
(the widest margin on both sides). When they overlap, the threshold with the lowest balanced
error (false-accept rate + false-reject rate on these scores); ties go to fewer false
accepts, since a wrong character passing is worse than one more regeneration. Fewer than two
references, or no other character with references, gives no suggestion (keep the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from tasks.scoring.faces import Reduction, cosine, reduce_cosines, reference_matrix

# Leave-one-out needs two references for one same-character score; fewer keeps the default.
MIN_REFERENCES = 2


class ScoreDistribution(BaseModel):
    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    p05: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p95: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Any) -> ScoreDistribution:
        data = np.asarray(values, dtype=np.float64).ravel()
        if data.size == 0:
            return cls(count=0)
        p05, p25, p50, p75, p95 = (float(v) for v in np.percentile(data, [5, 25, 50, 75, 95]))
        return cls(
            count=int(data.size),
            mean=float(data.mean()),
            std=float(data.std()),
            min=float(data.min()),
            p05=p05,
            p25=p25,
            p50=p50,
            p75=p75,
            p95=p95,
            max=float(data.max()),
        )

    def describe(self) -> str:
        if self.count == 0:
            return "no scores"
        return (
            f"n={self.count}, mean {self.mean:.3f} ± {self.std:.3f}, "
            f"min {self.min:.3f}, median {self.p50:.3f}, max {self.max:.3f}"
        )


class CalibrationReport(BaseModel):
    character: str
    reduction: Reduction
    references: int
    same_character: ScoreDistribution
    other_characters: ScoreDistribution
    closest_others: dict[str, float] = Field(
        default_factory=dict,
        description="per other character, its highest score against this character",
    )
    suggested_threshold: float | None
    method: str
    separable: bool | None = None
    false_accepts: int | None = Field(None, description="other-character scores >= threshold")
    false_rejects: int | None = Field(None, description="same-character scores < threshold")
    explanation: str


def same_character_scores(references: np.ndarray, reduce: Reduction = "max") -> np.ndarray:
    """Each reference scored against the others (leave-one-out)."""
    n = references.shape[0]
    if n < MIN_REFERENCES:
        return np.zeros(0)
    cosines = cosine(references, references.T)
    return np.array(
        [reduce_cosines(np.delete(cosines[i], i), reduce) for i in range(n)], dtype=np.float64
    )


def other_character_scores(
    references: np.ndarray, others: Mapping[str, np.ndarray], reduce: Reduction = "max"
) -> dict[str, np.ndarray]:
    """Each other character's references scored against this character's references."""
    return {
        slug: np.array([reduce_cosines(cosine(references, row), reduce) for row in refs])
        for slug, refs in others.items()
        if refs.shape[0] > 0
    }


def _threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, bool, str]:
    if genuine.min() > impostor.max():
        threshold = (genuine.min() + impostor.max()) / 2.0
        return (
            float(threshold),
            True,
            (
                "midpoint between the highest other-character score and the lowest "
                "same-character score"
            ),
        )
    scores = np.unique(np.concatenate([genuine, impostor]))
    candidates = np.concatenate([(scores[:-1] + scores[1:]) / 2.0, scores[-1:] + 1e-6])

    def balanced_error(t: float) -> tuple[float, float, float]:
        far = float(np.mean(impostor >= t))
        frr = float(np.mean(genuine < t))
        return (far + frr, far, -t)

    best = min(balanced_error(float(t)) for t in candidates)
    return (
        -best[2],
        False,
        (
            "lowest balanced error (false-accept rate + false-reject rate); the distributions "
            "overlap"
        ),
    )


def calibrate_character(
    character: str,
    references: Any,
    others: Mapping[str, Any],
    *,
    reduce: Reduction = "max",
) -> CalibrationReport:
    """Distributions of same- and other-character scores and a suggested face threshold.

    ``references``: this character's reference embeddings (N x d); ``others``: other
    character slug -> their reference embeddings. See the module docstring for the method.
    """
    own = reference_matrix(references, character=character)
    other_refs = {
        slug: reference_matrix(refs, character=slug)
        for slug, refs in others.items()
        if slug != character
    }
    for slug, refs in other_refs.items():
        if refs.size and own.size and refs.shape[1] != own.shape[1]:
            raise ValueError(
                f"reference embeddings of {slug!r} have {refs.shape[1]} dimensions, those of "
                f"{character!r} {own.shape[1]}: they come from different face models"
            )
    genuine = same_character_scores(own, reduce)
    per_other = other_character_scores(own, other_refs, reduce) if own.size else {}
    impostor = np.concatenate(list(per_other.values())) if per_other else np.zeros(0)
    report: dict[str, Any] = {
        "character": character,
        "reduction": reduce,
        "references": int(own.shape[0]),
        "same_character": ScoreDistribution.of(genuine),
        "other_characters": ScoreDistribution.of(impostor),
        "closest_others": {
            slug: float(s.max())
            for slug, s in sorted(per_other.items(), key=lambda kv: -float(kv[1].max()))
        },
    }
    if genuine.size == 0:
        why = f"{character!r} has {own.shape[0]} reference(s); calibration needs at least two"
        return CalibrationReport(
            **report, suggested_threshold=None, method="none", explanation=f"No threshold: {why}."
        )
    if impostor.size == 0:
        return CalibrationReport(
            **report,
            suggested_threshold=None,
            method="none",
            explanation=(
                f"No threshold for {character!r}: no other character has reference "
                "embeddings to tell apart; keep the project default."
            ),
        )
    threshold, separable, method = _threshold(genuine, impostor)
    false_accepts = int(np.sum(impostor >= threshold))
    false_rejects = int(np.sum(genuine < threshold))
    explanation = (
        f"Suggested face threshold for {character!r}: {threshold:.4f} ({method}). "
        f"Same character ({reduce} over references): {report['same_character'].describe()}. "
        f"Other characters: {report['other_characters'].describe()}. "
        f"On these scores it accepts {false_accepts} of {impostor.size} other-character "
        f"faces and rejects {false_rejects} of {genuine.size} same-character faces."
    )
    return CalibrationReport(
        **report,
        suggested_threshold=threshold,
        method=method,
        separable=separable,
        false_accepts=false_accepts,
        false_rejects=false_rejects,
        explanation=explanation,
    )


def calibrate_cast(
    library: Mapping[str, Any], *, reduce: Reduction = "max"
) -> dict[str, CalibrationReport]:
    """Calibrate every character of ``library`` (slug -> references) against all the others."""
    return {
        slug: calibrate_character(slug, refs, library, reduce=reduce)
        for slug, refs in library.items()
    }
