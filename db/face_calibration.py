"""Face calibrations: each character's face threshold per face model, and what it is made of."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import (
    Character,
    CharacterLook,
    CharacterReference,
    FaceCalibration,
    FaceEmbedding,
    Project,
)


def project_id_of(session: Session, project: str) -> int:
    found = session.scalar(select(Project.id).where(Project.slug == project))
    if found is None:
        raise LookupError(f"no project {project!r}")
    return found


def project_settings(session: Session, project_id: int) -> dict:
    """The project's settings (its choice of identity model among them)."""
    return dict(session.scalar(select(Project.settings).where(Project.id == project_id)) or {})


def character_slugs(session: Session, project_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Character.slug)
            .where(Character.project_id == project_id)
            .order_by(Character.slug)
        )
    )


def face_library(session: Session, project_id: int) -> dict[str, dict[str, list[list[float]]]]:
    """Face model name -> character slug -> its base look's reference embeddings (the anchors)
    from that model.

    Every character of the project is listed under every model, with no embeddings if need
    be, so a character without references is calibrated (to the default) too."""
    slugs = list(
        session.scalars(
            select(Character.slug)
            .where(Character.project_id == project_id)
            .order_by(Character.slug)
        )
    )
    rows = session.execute(
        select(FaceEmbedding.model_name, Character.slug, FaceEmbedding.vector)
        .join(CharacterReference, FaceEmbedding.reference_id == CharacterReference.id)
        .join(Character, CharacterReference.character_id == Character.id)
        .where(Character.project_id == project_id, CharacterReference.look_id.is_(None))
        .order_by(FaceEmbedding.id)
    )
    library: dict[str, dict[str, list[list[float]]]] = {}
    # Models calibrated before but without embeddings now (references replaced) are listed
    # too, so their thresholds fall back to the default instead of going stale.
    for model_name in session.scalars(
        select(FaceCalibration.model_name)
        .join(Character)
        .where(Character.project_id == project_id)
        .distinct()
    ):
        library[model_name] = {s: [] for s in slugs}
    for model_name, slug, vector in rows:
        per_model = library.setdefault(model_name, {s: [] for s in slugs})
        per_model[slug].append(list(vector))
    return library


def look_library(
    session: Session, project_id: int
) -> dict[str, dict[tuple[str, str], list[list[float]]]]:
    """Face model name -> (character slug, look name) -> the embeddings of that look's
    references: its own, and the anchors unless it replaces them. Looks in force only (a
    retired look keeps the threshold it had)."""
    looks = session.scalars(
        select(CharacterLook)
        .join(Character)
        .where(Character.project_id == project_id, CharacterLook.retired.is_(False))
        .order_by(Character.slug, CharacterLook.name)
    ).all()
    rows = session.execute(
        select(
            FaceEmbedding.model_name,
            CharacterReference.character_id,
            CharacterReference.look_id,
            FaceEmbedding.vector,
        )
        .join(CharacterReference, FaceEmbedding.reference_id == CharacterReference.id)
        .join(Character, CharacterReference.character_id == Character.id)
        .where(Character.project_id == project_id)
        .order_by(FaceEmbedding.id)
    ).all()
    library: dict[str, dict[tuple[str, str], list[list[float]]]] = {}
    for model_name in {row[0] for row in rows}:
        per_model = library.setdefault(model_name, {})
        for look in looks:
            per_model[(look.character.slug, look.name)] = [
                list(vector)
                for model, character_id, look_id, vector in rows
                if model == model_name
                and character_id == look.character_id
                and (look_id == look.id or (look_id is None and not look.replaces_references))
            ]
    return library


def store_face_calibration(
    session: Session,
    project_id: int,
    slug: str,
    *,
    model_name: str,
    threshold: float | None,
    references: int,
    impostors: int,
    method: str,
    explanation: str,
    look: str | None = None,
) -> FaceCalibration:
    """Insert or replace the character's calibration for ``model_name`` (in ``look``; None:
    the base look)."""
    character = session.scalar(
        select(Character).where(Character.project_id == project_id, Character.slug == slug)
    )
    if character is None:
        raise LookupError(f"project has no character {slug!r}")
    look_id = None
    if look is not None:
        look_id = session.scalar(
            select(CharacterLook.id).where(
                CharacterLook.character_id == character.id, CharacterLook.name == look
            )
        )
        if look_id is None:
            raise LookupError(f"character {slug!r} has no look {look!r}")
    row = session.scalar(
        select(FaceCalibration).where(
            FaceCalibration.character_id == character.id,
            FaceCalibration.model_name == model_name,
            FaceCalibration.look_id.is_(None)
            if look_id is None
            else FaceCalibration.look_id == look_id,
        )
    )
    if row is None:
        row = FaceCalibration(character_id=character.id, model_name=model_name, look_id=look_id)
        session.add(row)
    row.threshold = threshold
    row.references = references
    row.impostors = impostors
    row.method = method
    row.explanation = explanation
    session.flush()
    return row
