"""The production file: one YAML describing a whole production, validated before anything is stored.

Errors name the file, the path inside it (``episodes[0].scenes[2].cuts[4].frames``) and what is
wrong, all of them at once, so a broken file is fixed in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from db.image_files import image_problem
from db.media_paths import contained
from db.normalize import normalize_attribute_key, normalize_attribute_value, slugify
from db.notification_routes import normalized_settings
from db.storyline.spec import StorySpec, story_section_problems
from db.template_checks import template_problems
from db.vocabulary import BASE_LOOK, VariationKind
from db.yaml_files import YamlBudgetError, load_yaml, read_capped

Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _Strict(BaseModel):
    # A misspelt field is an error, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProjectSpec(_Strict):
    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)


class StoryBibleSpec(_Strict):
    style_prompt: str = ""
    negative_prompt: str = ""
    palette: list[str] = Field(default_factory=list)
    style_references: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)


class VariationSpec(_Strict):
    kind: VariationKind
    name: Slug
    prompt: str = ""
    reference_image: str | None = None


class ReferenceSpec(_Strict):
    path: str = Field(min_length=1)
    view: str = ""
    source: Literal["imported", "sheet"] = "imported"


def _normalized_attributes(value: Any) -> Any:
    """Attribute keys and values as stored (db/normalize.py); two keys equal once normalized
    are an error rather than one silently winning."""
    if not isinstance(value, dict):
        return value
    normalized: dict[str, str] = {}
    for key, raw in value.items():
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"attribute {key!r} must be a text value, not {type(raw).__name__}")
        canonical = normalize_attribute_key(str(key))
        if canonical in normalized:
            raise ValueError(
                f"attribute {key!r} is the same key as another once normalized ({canonical!r})"
            )
        normalized[canonical] = normalize_attribute_value(str(raw))
    return normalized


class LookSpec(_Strict):
    """A later look: in force from ``from_episode`` on, or from ``from_story`` (a story commit,
    ``story@commit``, or a story scene or chapter slug: for the episodes adapting it or a later
    point, see db/looks.py); neither: only where a cut names it."""

    name: Slug
    from_episode: int | None = Field(None, ge=1)
    from_story: str | None = Field(None, min_length=1, max_length=200)
    prompt: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    references: list[ReferenceSpec] = Field(default_factory=list)
    # The anchor references (the canonical face) are shared unless the look replaces them.
    replaces_references: bool = False

    _attributes = field_validator("attributes", mode="before")(
        classmethod(lambda cls, v: _normalized_attributes(v))
    )

    @field_validator("name")
    @classmethod
    def _not_base(cls, name: str) -> str:
        if name == BASE_LOOK:
            raise ValueError(f"{BASE_LOOK!r} is the character's own look; name this one otherwise")
        return name


class CharacterSpec(_Strict):
    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    base_prompt: str = ""
    negative_prompt: str = ""
    face_threshold: float | None = Field(None, ge=-1.0, le=1.0)
    attributes: dict[str, str] = Field(default_factory=dict)
    variations: list[VariationSpec] = Field(default_factory=list)
    references: list[ReferenceSpec] = Field(default_factory=list)
    looks: list[LookSpec] = Field(default_factory=list)

    _attributes = field_validator("attributes", mode="before")(
        classmethod(lambda cls, v: _normalized_attributes(v))
    )

    @model_validator(mode="after")
    def _unique_children(self) -> CharacterSpec:
        _no_duplicates([(v.kind.value, v.name) for v in self.variations], "variations", "kind/name")
        _no_duplicates([r.path for r in self.references], "references", "path")
        _no_duplicates([look.name for look in self.looks], "looks", "name")
        # One image is one reference row: it belongs to the anchors or to one look.
        _no_duplicates(
            [r.path for r in self.references] + [r.path for k in self.looks for r in k.references],
            "references (anchors and looks together)",
            "path",
        )
        return self


class CastMember(_Strict):
    """A character in a cut, with chosen variations by kind: ``{outfit: school-uniform}``."""

    character: Slug
    role: str = ""
    position: str = ""
    outfit: Slug | None = None
    expression: Slug | None = None
    pose: Slug | None = None
    # A look of the character's instead of the one in force for the episode (a flashback).
    look: Slug | None = None

    def variations(self) -> dict[str, str]:
        chosen = {"outfit": self.outfit, "expression": self.expression, "pose": self.pose}
        return {kind: name for kind, name in chosen.items() if name}


def _cast_shorthand(value: Any) -> Any:
    # `cast: [aki, ren]` is the common case; a mapping gives variations and role.
    if isinstance(value, list):
        return [{"character": item} if isinstance(item, str) else item for item in value]
    return value


class CutSpec(_Strict):
    number: int = Field(ge=1)
    description: str = ""
    dialogue: str = ""
    camera: dict[str, Any] = Field(default_factory=dict)
    frames: int = Field(16, ge=1, le=10_000)
    fps: int = Field(8, ge=1, le=120)
    template: str | None = None
    cast: list[CastMember] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)

    _cast = field_validator("cast", mode="before")(classmethod(lambda cls, v: _cast_shorthand(v)))


class SceneSpec(_Strict):
    number: int = Field(ge=1)
    title: str = ""
    description: str = ""
    location: str = ""
    time_of_day: str = ""
    cast: list[CastMember] = Field(default_factory=list)
    cuts: list[CutSpec] = Field(default_factory=list)

    _cast = field_validator("cast", mode="before")(classmethod(lambda cls, v: _cast_shorthand(v)))

    @model_validator(mode="after")
    def _unique_cuts(self) -> SceneSpec:
        _no_duplicates([c.number for c in self.cuts], "cuts", "number")
        return self


class EpisodeSpec(_Strict):
    number: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=300)
    synopsis: str = ""
    # The story version adapted: "story@branch" (pins the branch head at first import),
    # "story@commit" or a commit id; story_branch is the line compared with in `anime status`
    # (default: the branch named, else the story's default); story_scenes narrows it to scene or
    # chapter slugs (default: the whole story).
    story_commit: str | None = None
    story_branch: str | None = None
    story_scenes: list[Slug] = Field(default_factory=list)
    scenes: list[SceneSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_scenes(self) -> EpisodeSpec:
        _no_duplicates([s.number for s in self.scenes], "scenes", "number")
        return self


class ProductionFile(_Strict):
    format_version: Literal[1] = 1
    project: ProjectSpec
    story_bible: StoryBibleSpec = Field(default_factory=StoryBibleSpec)
    characters: list[CharacterSpec] = Field(default_factory=list)
    stories: list[StorySpec] = Field(default_factory=list)
    episodes: list[EpisodeSpec] = Field(default_factory=list)
    # The folder the file was read from (absolute); image paths inside it are relative to it.
    _root: str | None = PrivateAttr(default=None)

    @property
    def root(self) -> str | None:
        return self._root

    @model_validator(mode="after")
    def _unique_top_level(self) -> ProductionFile:
        _no_duplicates([c.slug for c in self.characters], "characters", "slug")
        _no_duplicates([e.number for e in self.episodes], "episodes", "number")
        return self


def _no_duplicates(keys: list[Any], what: str, key_name: str) -> None:
    seen: set[Any] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"{what}[{index}] repeats {key_name} {key!r}")
        seen.add(key)


class ProductionFileError(ValueError):
    """Everything wrong with one production file; nothing was stored."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [f"{file}: {len(problems)} problem(s); nothing was imported"]
        lines += [f"  {file}: {path or '<top>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def format_location(loc: tuple[Any, ...]) -> str:
    """('episodes', 0, 'scenes', 2, 'frames') -> 'episodes[0].scenes[2].frames'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "(" in str(part):
            continue  # pydantic's internal validator names mean nothing to a person
        else:
            out += f".{part}" if out else str(part)
    return out


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on histories


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """YAML silently keeps the last of two equal keys; a production file must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_production(
    data: Any, file: str = "<production>", base_dir: Path | None = None
) -> ProductionFile:
    """Validate parsed data; image paths are resolved against ``base_dir`` and must exist."""
    if not isinstance(data, dict):
        raise ProductionFileError(file, [("", "the file must hold a mapping with project: ...")])
    try:
        production = ProductionFile.model_validate(data)
    except ValidationError as exc:
        problems = [(format_location(err["loc"]), _message(err)) for err in exc.errors()]
        raise ProductionFileError(file, problems) from None
    problems = _cross_reference_problems(production) + template_problems(production)
    if base_dir is not None:
        problems += _resolve_paths(production, base_dir)
        production._root = base_dir.resolve().as_posix()
    if problems:
        raise ProductionFileError(file, problems)
    return production


def _message(err: dict[str, Any]) -> str:
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if err["type"] == "missing":
        return "required field is missing"
    return message


def load_production(path: str | Path) -> ProductionFile:
    path = Path(path)
    try:
        text = read_capped(path)
    except YamlBudgetError as exc:
        raise ProductionFileError(str(path), [("", exc.message)]) from None
    except FileNotFoundError:
        raise ProductionFileError(str(path), [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProductionFileError(str(path), [("", f"cannot be read: {exc}")]) from None
    try:
        data = load_yaml(text, _UniqueKeyLoader)
    except YamlBudgetError as exc:
        raise ProductionFileError(str(path), [(exc.where, exc.message)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProductionFileError(str(path), [(where, f"not valid YAML: {problem}")]) from None
    return parse_production(data, str(path), base_dir=path.parent)


def _cross_reference_problems(production: ProductionFile) -> list[tuple[str, str]]:
    """Casting must name known characters and variations they actually have."""
    characters = {c.slug: c for c in production.characters}
    problems: list[tuple[str, str]] = []

    def check_cast(cast: list[CastMember], where: str) -> None:
        seen: set[str] = set()
        for index, member in enumerate(cast):
            path = f"{where}.cast[{index}]"
            character = characters.get(member.character)
            if character is None:
                known = ", ".join(sorted(characters)) or "none"
                problems.append(
                    (
                        f"{path}.character",
                        f"unknown character {member.character!r} (known: {known})",
                    )
                )
                continue
            if member.character in seen:
                problems.append((f"{path}.character", f"{member.character!r} is cast twice"))
            seen.add(member.character)
            looks = {look.name for look in character.looks} | {BASE_LOOK}
            if member.look and member.look not in looks:
                problems.append(
                    (
                        f"{path}.look",
                        f"{member.character!r} has no look {member.look!r} "
                        f"(known: {', '.join(sorted(looks))})",
                    )
                )
            for kind, name in member.variations().items():
                names = {v.name for v in character.variations if v.kind.value == kind}
                if name not in names:
                    known = ", ".join(sorted(names)) or "none"
                    problems.append(
                        (
                            f"{path}.{kind}",
                            f"{member.character!r} has no {kind} {name!r} (known: {known})",
                        )
                    )

    for e, episode in enumerate(production.episodes):
        for s, scene in enumerate(episode.scenes):
            check_cast(scene.cast, f"episodes[{e}].scenes[{s}]")
            for m, member in enumerate(scene.cast):
                if member.look:  # a scene's cast is who is in it; what they look like is per cut
                    problems.append(
                        (
                            f"episodes[{e}].scenes[{s}].cast[{m}].look",
                            "a look is chosen per cut (cuts[].cast), not per scene",
                        )
                    )
            for c, cut in enumerate(scene.cuts):
                check_cast(cut.cast, f"episodes[{e}].scenes[{s}].cuts[{c}]")
    return (
        problems
        + _look_problems(production)
        + _settings_problems(production)
        + story_section_problems(production)
    )


def _look_problems(production: ProductionFile) -> list[tuple[str, str]]:
    """A look takes effect from one place: an episode the file has (no two looks from the same
    one) or a story point (checked on import, against the stories stored by then)."""
    episodes = {e.number for e in production.episodes}
    problems: list[tuple[str, str]] = []
    for c, character in enumerate(production.characters):
        starts: dict[int, str] = {}
        for k, look in enumerate(character.looks):
            where = f"characters[{c}].looks[{k}].from_episode"
            if look.from_episode is not None and look.from_story is not None:
                problems.append(
                    (
                        f"characters[{c}].looks[{k}].from_story",
                        "give from_episode or from_story, not both: a look takes effect from "
                        "one place",
                    )
                )
                continue
            if look.from_episode is None:
                continue
            if look.from_episode not in episodes:
                known = ", ".join(str(n) for n in sorted(episodes)) or "none"
                problems.append((where, f"unknown episode {look.from_episode} (known: {known})"))
            elif look.from_episode in starts:
                problems.append(
                    (
                        where,
                        f"look {look.name!r} overlaps look {starts[look.from_episode]!r}: both "
                        f"take effect from episode {look.from_episode}",
                    )
                )
            else:
                starts[look.from_episode] = look.name
    return problems


def _settings_problems(production: ProductionFile) -> list[tuple[str, str]]:
    """Notification routes are checked here, not at the first render that would send one."""
    project = production.project
    settings, problems = normalized_settings(project.settings)
    project.settings = settings
    return [(f"project.{where}", message) for where, message in problems]


def map_image_paths(production: ProductionFile, change: Callable[[str, str], str]) -> None:
    """Apply ``change(path, where)`` to every image path the file names, in place."""
    bible = production.story_bible
    bible.style_references = [
        change(p, f"story_bible.style_references[{i}]")
        for i, p in enumerate(bible.style_references)
    ]
    for c, character in enumerate(production.characters):
        for r, ref in enumerate(character.references):
            ref.path = change(ref.path, f"characters[{c}].references[{r}].path")
        for k, look in enumerate(character.looks):
            for r, ref in enumerate(look.references):
                ref.path = change(ref.path, f"characters[{c}].looks[{k}].references[{r}].path")
        for v, variation in enumerate(character.variations):
            if variation.reference_image:
                variation.reference_image = change(
                    variation.reference_image, f"characters[{c}].variations[{v}].reference_image"
                )


def relative_to(path: str, root: str | Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, else unchanged (absolute)."""
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(root):
        return candidate.relative_to(root).as_posix()
    return path


def _resolve_paths(production: ProductionFile, base_dir: Path) -> list[tuple[str, str]]:
    """Check that image paths lie inside the production (or the media root), exist and are
    images within the pixel cap; store them relative to the file's folder when inside it.

    Relative paths are what make a production copied or moved elsewhere the same production:
    importing the moved copy changes no character and no story bible version.
    """
    problems: list[tuple[str, str]] = []
    root = base_dir.resolve()

    def resolve(raw: str, where: str) -> str:
        candidate = Path(raw).expanduser()
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if contained(resolved, root) is None:
            problems.append(
                (
                    where,
                    f"{raw} is outside the production's folder ({root}) and the "
                    "media root (ANIME_MEDIA_ROOT)",
                )
            )
        elif not resolved.is_file():
            problems.append((where, f"image file not found: {raw} (looked at {resolved})"))
        elif problem := image_problem(resolved):
            problems.append((where, problem))
        return relative_to(resolved.as_posix(), root)

    map_image_paths(production, resolve)
    return problems


def dump_production(production: ProductionFile) -> str:
    data = production.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


__all__ = [
    "CastMember",
    "CharacterSpec",
    "CutSpec",
    "EpisodeSpec",
    "LookSpec",
    "ProductionFile",
    "ProductionFileError",
    "SceneSpec",
    "dump_production",
    "load_production",
    "map_image_paths",
    "parse_production",
    "relative_to",
    "slugify",
]
