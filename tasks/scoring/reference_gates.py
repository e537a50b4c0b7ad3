"""Would the studio's own gates reject the production's own reference images?

A style reference that scores below the aesthetic gate means keyframes that look exactly like
what the production asked for are rejected: the gate or the reference is wrong, and the studio
should know before an episode burns its attempts on it. Aesthetic is the gate a single
reference image can be held to on its own; the face gate's counterpart (a calibrated threshold
that fails a character's own references) is reported by the calibration itself, and style
adherence of a style reference against the set that contains it is trivially met.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.vocabulary import Phase
from tasks.scoring.aesthetic import aesthetic_batch


class ReferenceRejection(BaseModel):
    kind: str  # "style reference" or "<character> reference"
    path: str
    metric: str
    value: float
    gate: str  # e.g. ">= 5.5"
    phase: str

    def warning(self) -> str:
        return (
            f"warning: {self.kind} {self.path}: {self.metric} {self.value:.2f} fails the "
            f"{self.phase} gate {self.gate}, so keyframes like it would be rejected: "
            "check the reference or the gate"
        )


def reference_rejections(
    references: Sequence[tuple[str, str]],
    thresholds: QualityThresholds,
    models: ScoringModels,
    phase: Phase = Phase.GENERATION,
) -> list[ReferenceRejection]:
    """The references (kind, path) the ``phase``'s aesthetic gate would fail, in order.

    Raises ModelUnavailable when the aesthetic models cannot be loaded, and the image reader's
    error for a reference that cannot be read (the caller says it could not check)."""
    found = thresholds.gate_for("aesthetic", phase)
    if not references or found is None:
        return []
    gate, _ = found
    results = aesthetic_batch([path for _, path in references], models)
    return [
        ReferenceRejection(
            kind=kind,
            path=path,
            metric="aesthetic",
            value=float(result.value),
            gate=gate.describe(),
            phase=Phase(phase).value,
        )
        for (kind, path), result in zip(references, results, strict=True)
        if result.value is not None and not gate.passes(float(result.value))
    ]
