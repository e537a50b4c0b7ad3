"""Everything a render of one cut or one character needs, read once from the database.

Briefs are plain pydantic data so flows can pass them to tasks (and Prefect can record them)
without sessions or lazy loading crossing task boundaries.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from db.looks import LookChooser
from db.models import (
    Character,
    CharacterLook,
    CharacterReference,
    Cut,
    CutCasting,
    Episode,
    Project,
    Scene,
)
from db.production_file import BASE_LOOK
from db.vocabulary import Phase


class StyleBrief(BaseModel):
    version: int | None = None
    style_prompt: str = ""
    negative_prompt: str = ""
    palette: list[str] = Field(default_factory=list)
    style_references: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)


class FaceCalibrationBrief(BaseModel):
    """A character's calibrated face threshold for one face model (None: too few references)."""

    model_name: str
    threshold: float | None
    references: int
    impostors: int
    explanation: str = ""

    def source(self) -> str:
        """How the threshold was set, as a gate's explanation names it."""
        return (
            f"calibrated threshold {self.threshold:.2f} from {self.references} references "
            f"against {self.impostors} impostors ({self.model_name})"
        )


class CastBrief(BaseModel):
    character_id: int
    slug: str
    name: str
    # The look in force for the cut's episode, or the one the cut named; None: the base look.
    look: str = BASE_LOOK
    look_id: int | None = None
    base_prompt: str = ""
    negative_prompt: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    # kind -> (variation name, prompt delta) for the variations chosen in this cut
    variations: dict[str, tuple[str, str]] = Field(default_factory=dict)
    position: str = ""
    reference_images: list[str] = Field(default_factory=list)
    # face model name -> the reference embeddings that model made (never mixed: cosines
    # between two models' embeddings mean nothing)
    face_references: dict[str, list[list[float]]] = Field(default_factory=dict)
    face_threshold: float | None = None  # set by hand in the production file
    # face model name -> the threshold calibrated on its references
    face_calibrations: dict[str, FaceCalibrationBrief] = Field(default_factory=dict)

    def references_for(self, model_name: str) -> list[list[float]]:
        return self.face_references.get(model_name, [])


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

    def template_for(self, phase: Phase, override: str | None = None) -> str:
        """The run's override (one template for a whole smoke-test run), else the cut's pin,
        else the project's default for ``phase``."""
        if override:
            return override
        if phase is Phase.ANIMATION:
            return str(self.project_settings.get("animation_template", "animatediff_loop"))
        return self.template or str(self.project_settings.get("default_template", "keyframe"))


def style_brief(project: Project) -> StyleBrief:
    bible = project.story_bible
    if bible is None:
        return StyleBrief()
    content = bible.content()
    content["style_references"] = [project.file_path(p) for p in content["style_references"]]
    return StyleBrief(version=bible.version, **content)


def production_references(session: Session, project_id: int) -> list[tuple[str, str]]:
    """(kind, file) of the production's own reference images, as the gates would see them:
    the style references of its current story bible, then each character's references."""
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


def look_references(character: Character, look: CharacterLook | None) -> list[CharacterReference]:
    """What a look is judged against: its own references, and the anchors (references of no
    look, the canonical face) unless it replaces them."""
    anchors = [r for r in character.references if r.look_id is None]
    if look is None:
        return sorted(anchors, key=lambda r: r.id)
    own = [r for r in character.references if r.look_id == look.id]
    return sorted(own if look.replaces_references else anchors + own, key=lambda r: r.id)


def cast_brief(
    character: Character,
    chosen: dict[str, str] | None = None,
    position: str = "",
    look: CharacterLook | None = None,
) -> CastBrief:
    """The character as rendered in ``look`` (None: the base look)."""
    chosen = chosen or {}
    by_key = {(v.kind.value, v.name): v for v in character.variations}
    variations = {
        kind: (name, by_key[(kind, name)].prompt_delta)
        for kind, name in chosen.items()
        if (kind, name) in by_key
    }
    refs = look_references(character, look)
    by_model: dict[str, list[list[float]]] = {}
    for ref in refs:
        for emb in sorted(ref.embeddings, key=lambda e: e.id):
            by_model.setdefault(emb.model_name, []).append(list(emb.vector))
    calibrations = {
        c.model_name: FaceCalibrationBrief(
            model_name=c.model_name,
            threshold=c.threshold,
            references=c.references,
            impostors=c.impostors,
            explanation=c.explanation,
        )
        for c in character.face_calibrations
        if c.look_id == (look.id if look else None)
    }
    # The look's prompt delta follows the base prompt: later words describe the change.
    base_prompt = character.base_prompt
    if look is not None and look.prompt_delta:
        base_prompt = ", ".join(p for p in (base_prompt, look.prompt_delta) if p)
    return CastBrief(
        character_id=character.id,
        slug=character.slug,
        name=character.name,
        look=look.name if look else BASE_LOOK,
        look_id=look.id if look else None,
        base_prompt=base_prompt,
        negative_prompt=character.negative_prompt,
        attributes=look.attribute_map() if look else character.attribute_map(),
        variations=variations,
        position=position,
        reference_images=[r.file for r in refs],
        face_references=by_model,
        face_threshold=character.face_threshold,
        face_calibrations=calibrations,
    )


_CHARACTER_LOAD = (
    selectinload(Character.attributes),
    selectinload(Character.variations),
    selectinload(Character.references).selectinload(CharacterReference.embeddings),
    selectinload(Character.face_calibrations),
    selectinload(Character.looks),
)


def load_cut_brief(session: Session, cut_id: int) -> CutBrief:
    cut = (
        session.scalars(
            select(Cut)
            .where(Cut.id == cut_id)
            .options(
                selectinload(Cut.casting)
                .selectinload(CutCasting.character)
                .options(*_CHARACTER_LOAD),
                # One join, not a query each: every cut run reads its brief (and its story
                # bible's versions: a handful of rows).
                joinedload(Cut.scene)
                .joinedload(Scene.episode)
                .joinedload(Episode.project)
                .joinedload(Project.story_bibles),
            )
        )
        .unique()
        .first()
    )
    if cut is None:
        raise LookupError(f"no cut with id {cut_id}")
    scene = cut.scene
    episode = scene.episode
    project = episode.project
    cast = sorted(cut.casting, key=lambda row: row.character.slug)
    cast_briefs = []
    if cast:  # the looks in force are read only for a cut with a cast
        looks = LookChooser(session, project.id)
        cast_briefs = [
            cast_brief(
                row.character,
                row.variations,
                row.position,
                look=looks.look_for(row.character, episode.id, row.look),
            )
            for row in cast
        ]
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
        cast=cast_briefs,
    )


def load_character_brief(
    session: Session, character_id: int, look: str | None = None
) -> tuple[CastBrief, StyleBrief, int]:
    """A character (in ``look``; None: the base look) and its project's style, for sheets:
    (cast, style, project id)."""
    character = session.scalar(
        select(Character)
        .where(Character.id == character_id)
        .options(*_CHARACTER_LOAD, selectinload(Character.project))
    )
    if character is None:
        raise LookupError(f"no character with id {character_id}")
    chosen = None
    if look and look != BASE_LOOK:
        chosen = character.look_named(look)
        if chosen is None:
            known = ", ".join([BASE_LOOK, *(k.name for k in character.looks)])
            raise LookupError(f"character {character.slug!r} has no look {look!r} (looks: {known})")
    return cast_brief(character, look=chosen), style_brief(character.project), character.project_id


class SheetBrief(BaseModel):
    """What a character sheet is rendered from: the character and its project's style."""

    project_id: int
    project_slug: str
    character: CastBrief
    style: StyleBrief

    @property
    def label(self) -> str:
        if self.character.look != BASE_LOOK:
            return f"{self.character.slug} {self.character.look} sheet"
        return f"{self.character.slug} sheet"


def load_sheet_brief(
    session: Session, project: str, character: str, look: str | None = None
) -> SheetBrief:
    row = session.scalar(
        select(Character).join(Project).where(Project.slug == project, Character.slug == character)
    )
    if row is None:
        raise LookupError(f"project {project!r} has no character {character!r}")
    cast, style, project_id = load_character_brief(session, row.id, look)
    return SheetBrief(project_id=project_id, project_slug=project, character=cast, style=style)
