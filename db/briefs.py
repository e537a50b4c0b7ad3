"""Everything a render of one cut or one character needs, read once from the database.

Briefs are plain pydantic data so flows can pass them to tasks (and Prefect can record them)
without sessions or lazy loading crossing task boundaries.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import (
    Character,
    CharacterReference,
    Cut,
    CutCasting,
    Episode,
    FaceEmbedding,
    Project,
    Scene,
)


class StyleBrief(BaseModel):
    version: int | None = None
    style_prompt: str = ""
    negative_prompt: str = ""
    palette: list[str] = Field(default_factory=list)
    style_references: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)


class CastBrief(BaseModel):
    character_id: int
    slug: str
    name: str
    base_prompt: str = ""
    negative_prompt: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    # kind -> (variation name, prompt delta) for the variations chosen in this cut
    variations: dict[str, tuple[str, str]] = Field(default_factory=dict)
    position: str = ""
    reference_images: list[str] = Field(default_factory=list)
    reference_embeddings: list[list[float]] = Field(default_factory=list)
    face_threshold: float | None = None


class CutBrief(BaseModel):
    project_id: int
    project_slug: str
    project_settings: dict[str, Any] = Field(default_factory=dict)
    episode_id: int
    episode_number: int
    scene_id: int
    scene_number: int
    scene_description: str = ""
    location: str = ""
    time_of_day: str = ""
    cut_id: int
    cut_number: int
    description: str = ""
    dialogue: str = ""
    camera: dict[str, Any] = Field(default_factory=dict)
    frames: int = 16
    fps: int = 8
    template: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    style: StyleBrief = Field(default_factory=StyleBrief)
    cast: list[CastBrief] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"E{self.episode_number:02d}S{self.scene_number:02d}C{self.cut_number:02d}"


def style_brief(project: Project) -> StyleBrief:
    bible = project.story_bible
    if bible is None:
        return StyleBrief()
    content = bible.content()
    content["style_references"] = [project.file_path(p) for p in content["style_references"]]
    return StyleBrief(version=bible.version, **content)


def cast_brief(
    character: Character, chosen: dict[str, str] | None = None, position: str = ""
) -> CastBrief:
    chosen = chosen or {}
    by_key = {(v.kind.value, v.name): v for v in character.variations}
    variations = {
        kind: (name, by_key[(kind, name)].prompt_delta)
        for kind, name in chosen.items()
        if (kind, name) in by_key
    }
    refs = sorted(character.references, key=lambda r: r.id)
    embeddings = [e.vector for r in refs for e in sorted(r.embeddings, key=lambda e: e.id)]
    return CastBrief(
        character_id=character.id,
        slug=character.slug,
        name=character.name,
        base_prompt=character.base_prompt,
        negative_prompt=character.negative_prompt,
        attributes=character.attribute_map(),
        variations=variations,
        position=position,
        reference_images=[r.file for r in refs],
        reference_embeddings=[list(v) for v in embeddings],
        face_threshold=character.face_threshold,
    )


_CHARACTER_LOAD = (
    selectinload(Character.attributes),
    selectinload(Character.variations),
    selectinload(Character.references).selectinload(CharacterReference.embeddings),
)


def load_cut_brief(session: Session, cut_id: int) -> CutBrief:
    cut = session.scalar(
        select(Cut)
        .where(Cut.id == cut_id)
        .options(
            selectinload(Cut.casting).selectinload(CutCasting.character).options(*_CHARACTER_LOAD),
            selectinload(Cut.scene).selectinload(Scene.episode).selectinload(Episode.project),
        )
    )
    if cut is None:
        raise LookupError(f"no cut with id {cut_id}")
    scene = cut.scene
    episode = scene.episode
    project = episode.project
    cast = sorted(cut.casting, key=lambda row: row.character.slug)
    return CutBrief(
        project_id=project.id,
        project_slug=project.slug,
        project_settings=project.settings,
        episode_id=episode.id,
        episode_number=episode.number,
        scene_id=scene.id,
        scene_number=scene.number,
        scene_description=scene.description,
        location=scene.location,
        time_of_day=scene.time_of_day,
        cut_id=cut.id,
        cut_number=cut.number,
        description=cut.description,
        dialogue=cut.dialogue,
        camera=cut.camera,
        frames=cut.frames,
        fps=cut.fps,
        template=cut.template,
        overrides=cut.overrides,
        style=style_brief(project),
        cast=[cast_brief(row.character, row.variations, row.position) for row in cast],
    )


def load_character_brief(session: Session, character_id: int) -> tuple[CastBrief, StyleBrief, int]:
    """A character and its project's style, for sheets: (cast, style, project id)."""
    character = session.scalar(
        select(Character)
        .where(Character.id == character_id)
        .options(*_CHARACTER_LOAD, selectinload(Character.project))
    )
    if character is None:
        raise LookupError(f"no character with id {character_id}")
    return cast_brief(character), style_brief(character.project), character.project_id


class SheetBrief(BaseModel):
    """What a character sheet is rendered from: the character and its project's style."""

    project_id: int
    project_slug: str
    character: CastBrief
    style: StyleBrief

    @property
    def label(self) -> str:
        return f"{self.character.slug} sheet"


def load_sheet_brief(session: Session, project: str, character: str) -> SheetBrief:
    row = session.scalar(
        select(Character).join(Project).where(Project.slug == project, Character.slug == character)
    )
    if row is None:
        raise LookupError(f"project {project!r} has no character {character!r}")
    cast, style, project_id = load_character_brief(session, row.id)
    return SheetBrief(project_id=project_id, project_slug=project, character=cast, style=style)


def reference_embeddings(session: Session, character_id: int, model_name: str) -> list[list[float]]:
    rows = session.scalars(
        select(FaceEmbedding.vector)
        .join(CharacterReference)
        .where(
            CharacterReference.character_id == character_id, FaceEmbedding.model_name == model_name
        )
        .order_by(FaceEmbedding.id)
    )
    return [list(v) for v in rows]
