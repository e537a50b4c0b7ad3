"""Calibrate the cast's face thresholds from the stored reference embeddings, and store them.

Runs on the embeddings already in the database (no face model is loaded): ``anime calibrate``,
and after reference embeddings change (tasks/references.py, an approved sheet). ``anime
calibrate`` also checks the production's own reference images against its other gates
(reference_gate_warnings), since a gate that rejects them rejects what the production asked for.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.orm import Session

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db import face_calibration as db_calibration
from db.production_file import BASE_LOOK
from tasks.scoring.calibration import MIN_REFERENCES, calibrate_character


class StoredCalibration(BaseModel):
    character: str
    look: str = BASE_LOOK
    model_name: str
    threshold: float | None
    references: int
    impostors: int
    explanation: str
    own_rejected: int = 0  # the character's own references the threshold would fail

    @property
    def subject(self) -> str:
        """``aki``, or ``aki/time-skip`` for a look's threshold."""
        return self.character if self.look == BASE_LOOK else f"{self.character}/{self.look}"


def calibrate_project(
    session: Session,
    project_id: int,
    *,
    character: str | None = None,
    model_name: str | None = None,
) -> list[StoredCalibration]:
    """Calibrate each character (or only ``character``) for each face model with embeddings
    (or only ``model_name``), genuine pairs against the other characters' references."""
    library = db_calibration.face_library(session, project_id)
    if model_name is not None:
        library = {model_name: library.get(model_name, {})}
    stored: list[StoredCalibration] = []
    looks = db_calibration.look_library(session, project_id)
    for model, cast in sorted(library.items()):
        if character is not None and character not in cast:
            cast = {**cast, character: []}
        for slug in sorted(cast) if character is None else [character]:
            stored.append(
                _calibrate(session, project_id, slug, None, cast[slug] or [], cast, model)
            )
            # Each look in force is judged against its own references: its own threshold.
            for (look_of, look), refs in sorted(looks.get(model, {}).items()):
                if look_of == slug:
                    stored.append(
                        _calibrate(
                            session, project_id, slug, look, refs, {**cast, slug: refs}, model
                        )
                    )
    return stored


def _calibrate(
    session: Session,
    project_id: int,
    slug: str,
    look: str | None,
    refs: list[list[float]],
    cast: dict[str, list[list[float]]],
    model: str,
) -> StoredCalibration:
    """Genuine pairs among ``refs``, impostors from the other characters' references."""
    report = calibrate_character(slug, refs, cast)
    impostors = report.other_characters.count
    explanation = report.explanation
    if report.suggested_threshold is None:
        explanation += f" Default threshold kept (calibration needs {MIN_REFERENCES}+)."
    db_calibration.store_face_calibration(
        session,
        project_id,
        slug,
        model_name=model,
        threshold=report.suggested_threshold,
        references=report.references,
        impostors=impostors,
        method=report.method,
        explanation=explanation,
        look=look,
    )
    return StoredCalibration(
        character=slug,
        look=look or BASE_LOOK,
        model_name=model,
        threshold=report.suggested_threshold,
        references=report.references,
        impostors=impostors,
        explanation=explanation,
        own_rejected=report.false_rejects or 0,
    )


def production_references(session: Session, project_id: int) -> list[tuple[str, str]]:
    """(kind, path) of the production's own reference images: the style references of its
    current story bible, then each character's references."""
    from sqlalchemy import select

    from db.briefs import style_brief
    from db.models import Character, CharacterReference, Project

    project = session.get(Project, project_id)
    if project is None:
        return []
    found = [("style reference", path) for path in style_brief(project).style_references]
    rows = session.execute(
        select(Character.slug, CharacterReference.path)
        .join(CharacterReference, CharacterReference.character_id == Character.id)
        .where(Character.project_id == project_id)
        .order_by(Character.slug, CharacterReference.id)
    )
    found += [(f"{slug} reference", project.file_path(path)) for slug, path in rows]
    return found


def reference_gate_warnings(
    references: list[tuple[str, str]], thresholds: QualityThresholds, models: ScoringModels
) -> list[str]:
    """One warning line per reference image (production_references) the production's own
    gates would reject, or one line saying they could not be checked (models missing, a file
    unreadable)."""
    from tasks.scoring.reference_gates import reference_rejections

    try:
        rejected = reference_rejections(references, thresholds, models)
    except Exception as exc:  # a missing model or an unreadable file: say so, never crash
        return [f"note: reference images not checked against the gates: {exc}"]
    return [r.warning() for r in rejected]
