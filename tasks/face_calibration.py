"""Calibrate the cast's face thresholds from the stored reference embeddings, and store them.

Runs on the embeddings already in the database (no face model is loaded): ``anime calibrate``,
after an import that changes the production, and after reference embeddings change
(tasks/references.py, an approved sheet).
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.orm import Session

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
