"""Production files <-> rows: idempotent import in one transaction, and export back.

Rows are matched by slugs and numbers, so an edited file updates in place. Collections a file
owns whole (attributes, variations, casting, imported references) are made to match it;
episodes, scenes, cuts and characters missing from the file are kept (they may carry render
history) and reported, unless ``prune`` is asked for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.import_lock import lock_project_import
from db.looks import LookChooser, StoryPointError, resolve_story_point, story_point_text
from db.media_paths import content_sha256
from db.models import (
    Character,
    CharacterAttribute,
    CharacterLook,
    CharacterReference,
    CharacterVariation,
    Cut,
    CutCasting,
    Episode,
    Project,
    Scene,
    SceneCasting,
    StoryBible,
)
from db.production_file import (
    CastMember,
    CharacterSpec,
    CutSpec,
    LookSpec,
    ProductionFile,
    ProductionFileError,
    ReferenceSpec,
    SceneSpec,
    map_image_paths,
    relative_to,
)
from db.story_io import episode_story_fields, export_stories, import_stories, link_episodes


@dataclass
class ImportReport:
    project: str
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    kept_absent: list[str] = field(default_factory=list)
    story_bible_version: int | None = None
    # (old, new) folder of the production file, when this import read it from somewhere else
    moved: tuple[str | None, str] | None = None
    # Per character: references replaced at the same path (new content), embeddings dropped.
    content_changed: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def summary(self) -> str:
        moved = []
        if self.moved and self.moved[0]:
            moved = [f"image paths now read from {self.moved[1]} (was {self.moved[0]})"]
        if not self.changed:
            kept = []
            if self.kept_absent:
                kept = ["kept (not in the file; --prune removes): " + ", ".join(self.kept_absent)]
            head = f"{self.project}: already up to date, nothing changed"
            return "\n".join([head, *kept, *moved])

        def fmt(counter: Counter[str]) -> str:
            return ", ".join(f"{n} {kind}" for kind, n in sorted(counter.items())) or "nothing"

        lines = [
            f"{self.project}: created {fmt(self.created)}; updated {fmt(self.updated)}; "
            f"removed {fmt(self.removed)}"
        ]
        for slug, n in sorted(self.content_changed.items()):
            which = (
                "1 reference changed content; its"
                if n == 1
                else f"{n} references changed content; their"
            )
            lines.append(f"{slug}: {which} embeddings will be recomputed by the next episode run")
        if self.kept_absent:
            lines.append("kept (not in the file; --prune removes): " + ", ".join(self.kept_absent))
        return "\n".join(lines + moved)


def _assign(obj: Any, **values: Any) -> bool:
    """Set only what differs, so an unchanged row is never written (updated_at stays put)."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


class _Importer:
    def __init__(self, session: Session, prune: bool) -> None:
        self.session = session
        self.prune = prune

    def run(self, production: ProductionFile) -> ImportReport:
        spec = production.project
        self.report = ImportReport(project=spec.slug)
        project = self.session.scalar(select(Project).where(Project.slug == spec.slug))
        if project is None:
            project = Project(slug=spec.slug, name=spec.name)
            self.session.add(project)
            self.report.created["project"] += 1
        fields = {"name": spec.name, "description": spec.description, "settings": spec.settings}
        if _assign(project, **fields) and project.id is not None:
            self.report.updated["project"] += 1
        self._place(project, production)
        self.root = project.root
        self.session.flush()
        self._story_bible(project, production)
        # Stories first: a look may take effect from one of their commits or scenes.
        import_stories(self.session, project, production, self.report)
        characters = self._characters(project, production.characters)
        episodes_before = {e.number for e in project.episodes}
        self._episodes(project, production, characters)
        self.session.flush()
        link_episodes(self.session, project, production, self.report, episodes_before)
        _check_look_starts(self.session, project, production, characters)
        return self.report

    def _place(self, project: Project, production: ProductionFile) -> None:
        """The production's folder is the folder of the file that holds its images.

        A file naming its images relative to itself (the production, or a moved copy of it)
        makes its folder the root: a move, not an update. A file naming them only by absolute
        paths (an export written elsewhere) leaves the root where it was, and its paths are
        stored relative to that root, as they were.
        """
        if production.root is None:
            return
        paths: list[str] = []
        map_image_paths(production, lambda p, _where: paths.append(p) or p)
        if project.root and paths and all(p.startswith("/") for p in paths):
            root = project.root
            map_image_paths(production, lambda p, _where: relative_to(p, root))
            return
        if project.root != production.root:
            self.report.moved = (project.root, production.root)
            project.root = production.root

    def _story_bible(self, project: Project, production: ProductionFile) -> None:
        wanted = production.story_bible.model_dump()
        current = project.story_bible
        if current is not None and current.content() == wanted:
            self.report.story_bible_version = current.version
            return
        version = (current.version + 1) if current else 1
        project.story_bibles.append(StoryBible(version=version, **wanted))
        self.report.created["story bible version"] += 1
        self.report.story_bible_version = version

    def _characters(self, project: Project, specs: list[CharacterSpec]) -> dict[str, Character]:
        existing = {c.slug: c for c in project.characters}
        for index, spec in enumerate(specs):
            character = existing.get(spec.slug)
            if character is None:
                character = Character(slug=spec.slug, name=spec.name)
                project.characters.append(character)
                existing[spec.slug] = character
                self.report.created["character"] += 1
                is_new = True
            else:
                is_new = False
            changed = _assign(
                character,
                name=spec.name,
                description=spec.description,
                base_prompt=spec.base_prompt,
                negative_prompt=spec.negative_prompt,
                face_threshold=spec.face_threshold,
            )
            changed |= self._attributes(character, spec.attributes)
            changed |= self._variations(character, spec)
            changed |= self._looks(project, character, spec.looks, f"characters[{index}]")
            looks = {look.name: look for look in character.looks}
            refs = [(ref, None) for ref in spec.references] + [
                (ref, looks[look.name]) for look in spec.looks for ref in look.references
            ]
            changed |= self._references(character, refs)
            if changed and not is_new:
                self.report.updated["character"] += 1
        wanted = {s.slug for s in specs}
        for slug, character in list(existing.items()):
            if slug not in wanted:
                self._absent("character", f"character {slug}", character, project.characters)
        self.session.flush()
        return existing

    def _attributes(self, character: Character, attributes: dict[str, str]) -> bool:
        current = {a.key: a for a in character.attributes}
        changed = False
        for key, value in attributes.items():
            row = current.pop(key, None)
            if row is None:
                character.attributes.append(CharacterAttribute(key=key, value=value))
                changed = True
            else:
                changed |= _assign(row, value=value)
        for row in current.values():
            character.attributes.remove(row)
            changed = True
        return changed

    def _variations(self, character: Character, spec: CharacterSpec) -> bool:
        current = {(v.kind.value, v.name): v for v in character.variations}
        changed = False
        for v in spec.variations:
            row = current.pop((v.kind.value, v.name), None)
            if row is None:
                row = CharacterVariation(kind=v.kind, name=v.name, source="file")
                character.variations.append(row)
                changed = True
            # A variation added through the API and now written in the file: the file owns it.
            changed |= _assign(
                row, prompt_delta=v.prompt, reference_image=v.reference_image, source="file"
            )
        for row in current.values():
            if row.source == "file":
                character.variations.remove(row)
                changed = True
            else:
                # Added through the domain API: the file never knew it, so its absence is not
                # a decision to remove it. Kept and reported like other rows missing from it.
                label = f"variation {character.slug} {row.kind.value}/{row.name} ({row.source})"
                if self.prune:
                    character.variations.remove(row)
                    self.report.removed["variation"] += 1
                else:
                    self.report.kept_absent.append(label)
        return changed

    def _looks(
        self, project: Project, character: Character, specs: list[LookSpec], where: str
    ) -> bool:
        current = {look.name: look for look in character.looks}
        changed = False
        for index, spec in enumerate(specs):
            commit, scene = None, None
            if spec.from_story is not None:
                try:
                    commit, scene = resolve_story_point(self.session, project, spec.from_story)
                except StoryPointError as exc:
                    raise ProductionFileError(
                        "production file", [(f"{where}.looks[{index}].from_story", str(exc))]
                    ) from None
            row = current.pop(spec.name, None)
            if row is None:
                row = CharacterLook(name=spec.name)
                character.looks.append(row)
                changed = True
            changed |= _assign(
                row,
                from_episode=spec.from_episode,
                from_story_commit=commit,
                from_story_scene=scene,
                prompt_delta=spec.prompt,
                attributes=spec.attributes,
                replaces_references=spec.replaces_references,
                retired=False,
            )
        for row in current.values():
            # Renders made in a look stay linked to it: a look the file drops is retired (no
            # longer in force, its references kept), and only --prune removes it.
            if self.prune:
                for ref in [r for r in character.references if r.look is row]:
                    character.references.remove(ref)
                character.looks.remove(row)
                self.report.removed["look"] += 1
                continue
            if not row.retired:
                row.retired = True
                changed = True
            self.report.kept_absent.append(f"look {character.slug}/{row.name}")
        return changed

    def _references(
        self, character: Character, refs: list[tuple[ReferenceSpec, CharacterLook | None]]
    ) -> bool:
        """Anchor references (no look) and each look's, matched by path."""
        current = {r.path: r for r in character.references}
        changed = False
        for ref, look in refs:
            row = current.pop(ref.path, None)
            if row is None and self.root and not ref.path.startswith("/"):
                # Stored absolute before paths were relative: the same image, keep its faces.
                row = current.pop(f"{self.root}/{ref.path}", None)
                if row is not None:
                    row.path = ref.path
                    changed = True
            if row is None:
                row = CharacterReference(path=ref.path)
                character.references.append(row)
                changed = True
            changed |= _assign(row, view=ref.view, source=ref.source, look=look)
            changed |= self._content(character, row)
        # Sheet references come from approved renders, not from the file: never dropped here;
        # nor are a retired look's, which its old renders were judged against.
        for row in current.values():
            if row.source == "imported" and not (row.look is not None and row.look.retired):
                character.references.remove(row)
                changed = True
        return changed

    def _content(self, character: Character, row: CharacterReference) -> bool:
        """A reference replaced at the same path shows another face: its embeddings go, so
        the next episode run embeds it again (and the import's recalibration no longer counts
        the old face). Only the hash is compared: an unchanged file keeps its embeddings."""
        if not (row.path.startswith("/") or self.root):
            return False  # a production read without its folder: nowhere to read the image
        try:
            digest = content_sha256(character.project.file_path(row.path))
        except OSError:
            return False  # not on this machine (checked only when read from a file): unknown
        if row.sha256 == digest:
            return False
        # A row stored before hashes were kept: its hash is recorded, nothing more is known.
        replaced = row.sha256 is not None
        row.sha256 = digest
        if replaced:
            row.embeddings.clear()
            self.report.content_changed[character.slug] += 1
        return replaced

    def _episodes(
        self, project: Project, production: ProductionFile, characters: dict[str, Character]
    ) -> None:
        existing = {e.number: e for e in project.episodes}
        for spec in production.episodes:
            episode = existing.get(spec.number)
            is_new = episode is None
            if episode is None:
                episode = Episode(number=spec.number)
                project.episodes.append(episode)
                self.report.created["episode"] += 1
            if _assign(episode, title=spec.title, synopsis=spec.synopsis) and not is_new:
                self.report.updated["episode"] += 1
            self._scenes(episode, spec.scenes, characters)
        wanted = {e.number for e in production.episodes}
        for number, episode in existing.items():
            if number not in wanted:
                self._absent("episode", f"episode {number}", episode, project.episodes)

    def _scenes(
        self, episode: Episode, specs: list[SceneSpec], characters: dict[str, Character]
    ) -> None:
        existing = {s.number: s for s in episode.scenes}
        for spec in specs:
            scene = existing.get(spec.number)
            is_new = scene is None
            if scene is None:
                scene = Scene(number=spec.number)
                episode.scenes.append(scene)
                self.report.created["scene"] += 1
            changed = _assign(
                scene,
                title=spec.title,
                description=spec.description,
                location=spec.location,
                time_of_day=spec.time_of_day,
            )
            changed |= self._scene_casting(scene, spec.cast, characters)
            if changed and not is_new:
                self.report.updated["scene"] += 1
            self._cuts(scene, spec.cuts, characters)
        wanted = {s.number for s in specs}
        for number, scene in existing.items():
            if number not in wanted:
                self._absent(
                    "scene", f"episode {episode.number} scene {number}", scene, episode.scenes
                )

    def _cuts(self, scene: Scene, specs: list[CutSpec], characters: dict[str, Character]) -> None:
        existing = {c.number: c for c in scene.cuts}
        for spec in specs:
            cut = existing.get(spec.number)
            is_new = cut is None
            if cut is None:
                cut = Cut(number=spec.number)
                scene.cuts.append(cut)
                self.report.created["cut"] += 1
            changed = _assign(
                cut,
                description=spec.description,
                dialogue=spec.dialogue,
                camera=spec.camera,
                frames=spec.frames,
                fps=spec.fps,
                template=spec.template,
                overrides=spec.overrides,
            )
            changed |= self._cut_casting(cut, spec.cast, characters)
            if changed and not is_new:
                self.report.updated["cut"] += 1
        wanted = {c.number for c in specs}
        for number, cut in existing.items():
            if number not in wanted:
                label = f"episode {scene.episode.number} scene {scene.number} cut {number}"
                self._absent("cut", label, cut, scene.cuts)

    def _scene_casting(
        self, scene: Scene, cast: list[CastMember], characters: dict[str, Character]
    ) -> bool:
        current = {row.character.slug: row for row in scene.casting}
        changed = False
        for member in cast:
            row = current.pop(member.character, None)
            if row is None:
                row = SceneCasting(character=characters[member.character])
                scene.casting.append(row)
                changed = True
            changed |= _assign(row, role=member.role)
        for row in current.values():
            scene.casting.remove(row)
            changed = True
        return changed

    def _cut_casting(
        self, cut: Cut, cast: list[CastMember], characters: dict[str, Character]
    ) -> bool:
        current = {row.character.slug: row for row in cut.casting}
        changed = False
        for member in cast:
            row = current.pop(member.character, None)
            if row is None:
                row = CutCasting(character=characters[member.character])
                cut.casting.append(row)
                changed = True
            changed |= _assign(
                row, variations=member.variations(), position=member.position, look=member.look
            )
        for row in current.values():
            cut.casting.remove(row)
            changed = True
        return changed

    def _absent(self, kind: str, label: str, row: Any, collection: list[Any]) -> None:
        if self.prune:
            collection.remove(row)
            self.report.removed[kind] += 1
        else:
            self.report.kept_absent.append(label)


def _check_look_starts(
    session: Session,
    project: Project,
    production: ProductionFile,
    characters: dict[str, Character],
) -> None:
    """No two looks of a character take effect from the same episode, a story point's looks
    included (the file alone can only check two ``from_episode``s): which would be in force?"""
    chooser = LookChooser(session, project.id)
    problems: list[tuple[str, str]] = []
    for c, spec in enumerate(production.characters):
        looks = {look.name: look for look in characters[spec.slug].looks}
        starts: dict[int, tuple[str, bool]] = {}  # episode -> (look, from a story point)
        for k, look_spec in enumerate(spec.looks):
            first = chooser.first_episode(looks[look_spec.name])
            if first is None:
                continue
            by_story = look_spec.from_story is not None
            if first in starts and (by_story or starts[first][1]):
                field = "from_story" if by_story else "from_episode"
                problems.append(
                    (
                        f"characters[{c}].looks[{k}].{field}",
                        f"look {look_spec.name!r} overlaps look {starts[first][0]!r}: both take "
                        f"effect from episode {first}",
                    )
                )
            starts.setdefault(first, (look_spec.name, by_story))
    if problems:
        raise ProductionFileError("production file", problems)


def import_production(
    session: Session, production: ProductionFile, prune: bool = False
) -> ImportReport:
    """Write a validated production into the database; the caller's transaction commits it."""
    lock_project_import(session, production.project.slug)
    return _Importer(session, prune).run(production)


def export_production(
    session: Session, project_slug: str, to_dir: str | None = None
) -> ProductionFile:
    """The project as a production file. Image paths are absolute, or relative to ``to_dir``
    (the folder the file will be written to) for images inside it."""
    project = session.scalar(
        select(Project)
        .where(Project.slug == project_slug)
        .options(
            selectinload(Project.characters).selectinload(Character.attributes),
            selectinload(Project.characters).selectinload(Character.variations),
            selectinload(Project.characters).selectinload(Character.references),
            selectinload(Project.characters).selectinload(Character.looks),
            selectinload(Project.episodes)
            .selectinload(Episode.scenes)
            .selectinload(Scene.cuts)
            .selectinload(Cut.casting),
        )
    )
    if project is None:
        raise LookupError(f"no project with slug {project_slug!r}")
    bible = project.story_bible
    production = ProductionFile.model_validate(
        {
            "project": {
                "slug": project.slug,
                "name": project.name,
                "description": project.description,
                "settings": project.settings,
            },
            "story_bible": bible.content() if bible else {},
            "characters": [_character_dict(c) for c in project.characters],
            "stories": export_stories(session, project),
            "episodes": [
                {
                    "number": e.number,
                    "title": e.title,
                    "synopsis": e.synopsis,
                    **episode_story_fields(session, e),
                    "scenes": [_scene_dict(s) for s in e.scenes],
                }
                for e in project.episodes
            ],
        }
    )

    def place(path: str, _where: str) -> str:
        located = project.file_path(path)
        return relative_to(located, to_dir) if to_dir else located

    map_image_paths(production, place)
    return production


def _character_dict(c: Character) -> dict[str, Any]:
    return {
        "slug": c.slug,
        "name": c.name,
        "description": c.description,
        "base_prompt": c.base_prompt,
        "negative_prompt": c.negative_prompt,
        "face_threshold": c.face_threshold,
        "attributes": c.attribute_map(),
        "variations": [
            {
                "kind": v.kind.value,
                "name": v.name,
                "prompt": v.prompt_delta,
                "reference_image": v.reference_image,
            }
            for v in c.variations
        ],
        "references": [_reference_dict(r) for r in c.references if r.look is None],
        "looks": [
            {
                "name": look.name,
                "from_episode": look.from_episode,
                "from_story": story_point_text(look),
                "prompt": look.prompt_delta,
                "attributes": look.attributes,
                "references": [_reference_dict(r) for r in look.references],
                "replaces_references": look.replaces_references,
            }
            for look in c.looks
            if not look.retired  # no longer in the file; kept in the database for its renders
        ],
    }


def _reference_dict(r: CharacterReference) -> dict[str, Any]:
    return {"path": r.path, "view": r.view, "source": r.source}


def _cast_dict(
    character: Character,
    role: str = "",
    position: str = "",
    variations=None,
    look: str | None = None,
) -> dict:
    chosen = {"look": look} if look else {}
    return {
        "character": character.slug,
        "role": role,
        "position": position,
        **(variations or {}),
        **chosen,
    }


def _scene_dict(s: Scene) -> dict[str, Any]:
    return {
        "number": s.number,
        "title": s.title,
        "description": s.description,
        "location": s.location,
        "time_of_day": s.time_of_day,
        "cast": [
            _cast_dict(row.character, role=row.role)
            for row in sorted(s.casting, key=lambda r: r.character.slug)
        ],
        "cuts": [
            {
                "number": c.number,
                "description": c.description,
                "dialogue": c.dialogue,
                "camera": c.camera,
                "frames": c.frames,
                "fps": c.fps,
                "template": c.template,
                "overrides": c.overrides,
                "cast": [
                    _cast_dict(
                        row.character,
                        position=row.position,
                        variations=row.variations,
                        look=row.look,
                    )
                    for row in sorted(c.casting, key=lambda r: r.character.slug)
                ],
            }
            for c in s.cuts
        ],
    }
