"""Would the studio's own gates reject the production's own reference images?

A style reference that scores below the aesthetic gate means keyframes that look exactly like
what the production asked for are rejected: the gate or the reference is wrong, and the studio
should know before an episode burns its attempts on it. Aesthetic is the gate a single
reference image can be held to on its own; the face gate's counterpart (a calibrated threshold
that fails a character's own references) is reported by the calibration itself, and style
adherence of a style reference against the set that contains it is trivially met.

``anime import`` and ``anime calibrate`` both run this check. It never downloads (fetching is
``anime models fetch``'s job), loads no model when the aesthetic model is not installed (so an
import on a machine without models imports no torch), and scores only images it has not scored
before with the same models (reference_scores).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.media_paths import content_sha256
from db.vocabulary import Phase
from tasks.scoring.loading.errors import FrameInputError, ModelUnavailable
from tasks.scoring.loading.places import aesthetic_head_path
from tasks.scoring.reference_scores import ReferenceScores

NOT_CHECKED = "note: reference images not checked against the gates"


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


class ReferenceCheck(BaseModel):
    """What the check found: the rejected references, and what it could not check."""

    phase: str
    rejected: list[ReferenceRejection] = []
    gate_source: str = ""  # where the gate's threshold comes from ("default gate", ...)
    installed: bool = True  # False: the aesthetic model is not on this machine
    unchecked: str | None = None  # why the references (or some) were not checked
    unreadable: list[str] = []  # "<kind> <path>: <why>", one per image that could not be read
    scored: int = 0  # images scored by this check; the others' scores were remembered

    def lines(self, *, note_when_not_installed: bool = True) -> list[str]:
        """The lines to print: one warning per rejected reference and how to act on them,
        then what was not checked. ``note_when_not_installed=False`` (``anime import``): say
        nothing when the aesthetic model is simply not installed (``anime models status``
        and ``anime demo`` say so; an import on such a machine prints what it always did)."""
        lines = [r.warning() for r in self.rejected]
        if self.rejected:
            gate = self.rejected[0]
            lines.append(
                f"  {len(self.rejected)} reference image(s) below the {gate.phase} aesthetic "
                f"gate {gate.gate} ({self.gate_source}): replace them, or set the gate in a "
                f"QualityThresholds block (phase_gates.{gate.phase}.aesthetic) and name it "
                "with --thresholds-block; --no-check-references skips this check"
            )
        if self.unchecked and (self.installed or note_when_not_installed):
            lines.append(f"{NOT_CHECKED}: {self.unchecked}")
        lines += [f"{NOT_CHECKED}: {problem}" for problem in self.unreadable]
        return lines


def check_references(
    references: Sequence[tuple[str, str]],
    thresholds: QualityThresholds,
    models: ScoringModels,
    phase: Phase = Phase.GENERATION,
) -> ReferenceCheck:
    """The references (kind, path) the ``phase``'s aesthetic gate would fail, in order.

    Never raises for a missing model or an unreadable image: the check says what it could not
    check. Scores are remembered by image content (reference_scores)."""
    check = ReferenceCheck(phase=Phase(phase).value)
    found = thresholds.gate_for("aesthetic", phase)
    if not references or found is None:
        return check
    gate, check.gate_source = found
    models = models.model_copy(update={"allow_downloads": False})
    head = aesthetic_head_path(models)
    if not head.is_file():
        check.installed = False
        check.unchecked = (
            f"the aesthetic model is not installed ({head} is missing): `anime models fetch "
            "aesthetic clip` installs it"
        )
        return check
    digests: dict[str, str] = {}
    for kind, path in references:
        try:
            digests[path] = content_sha256(path)
        except OSError as exc:
            check.unreadable.append(f"{kind} {path}: {exc.strerror or exc}")
    remembered = ReferenceScores(models)
    values = {path: remembered.get(digest) for path, digest in digests.items()}
    pending = {digests[p]: p for p, v in values.items() if v is None}  # one per distinct image
    if pending:
        try:
            fresh = _score(pending, references, models, check)
        except ModelUnavailable as exc:
            check.unchecked = str(exc)
            fresh = {}
        except Exception as exc:  # a broken model file: say so, never fail the command
            check.unchecked = f"aesthetic failed: {type(exc).__name__}: {exc}"
            fresh = {}
        remembered.save(fresh)
        check.scored = len(fresh)
        values.update({p: fresh.get(digests[p], values[p]) for p in values})
    check.rejected = [
        ReferenceRejection(
            kind=kind,
            path=path,
            metric="aesthetic",
            value=value,
            gate=gate.describe(),
            phase=check.phase,
        )
        for kind, path in references
        if (value := values.get(path)) is not None and not gate.passes(value)
    ]
    return check


def _score(
    pending: dict[str, str],
    references: Sequence[tuple[str, str]],
    models: ScoringModels,
    check: ReferenceCheck,
) -> dict[str, float]:
    """Aesthetic score per image sha256, for the images in ``pending`` (sha256 -> path); an
    image that cannot be decoded is named in ``check.unreadable`` and not scored."""
    from tasks.scoring.aesthetic import aesthetic_batch  # torch: only when something is new
    from tasks.scoring.images import load_image

    kinds = dict((path, kind) for kind, path in references)
    images, digests = [], []
    for digest, path in pending.items():
        try:
            images.append(load_image(path, where=f"{kinds[path]} {path}"))
        except FrameInputError as exc:
            check.unreadable.append(str(exc))
            continue
        digests.append(digest)
    results = aesthetic_batch(images, models)
    return {
        digest: float(result.value)
        for digest, result in zip(digests, results, strict=True)
        if result.value is not None
    }
