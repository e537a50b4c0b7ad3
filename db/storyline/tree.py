"""A story's tree (chapters -> story scenes), its canonical form and hash, and diffs between trees.

Everything here is pure: the database stores trees as content-addressed snapshots, the version
control in ``db/story.py`` decides which trees to compare or merge.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StorySlug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]

SCENE_FIELDS = ("title", "text", "notes")
CHAPTER_FIELDS = ("title", "notes")


def one_line(value: str) -> str:
    if "\n" in value:
        raise ValueError("a title is one line")
    return value


def normalize_text(value: Any) -> Any:
    """One spelling per text: LF line ends, no trailing spaces, no blank lines around it.

    Two editors that save the same words must produce the same snapshot hash.
    """
    if not isinstance(value, str):
        return value
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoryScene(_Strict):
    slug: StorySlug
    title: str = Field("", max_length=300)
    text: str = ""
    notes: str = ""

    _normalize = field_validator("title", "text", "notes", mode="before")(
        classmethod(lambda cls, v: normalize_text(v))
    )
    _one_line = field_validator("title")(classmethod(lambda cls, v: one_line(v)))


class StoryChapter(_Strict):
    slug: StorySlug
    title: str = Field("", max_length=300)
    notes: str = ""
    scenes: list[StoryScene] = Field(default_factory=list)

    _normalize = field_validator("title", "notes", mode="before")(
        classmethod(lambda cls, v: normalize_text(v))
    )
    _one_line = field_validator("title")(classmethod(lambda cls, v: one_line(v)))


class StoryTree(_Strict):
    """What one commit records: the chapters in order, each with its story scenes in order."""

    chapters: list[StoryChapter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_slugs(self) -> StoryTree:
        # One namespace for chapters and scenes: a slug names one thing in diffs, merges and
        # CLI edits, and a scene keeps its slug when it moves to another chapter.
        seen: dict[str, str] = {}
        for c, chapter in enumerate(self.chapters):
            where = f"chapters[{c}]"
            if chapter.slug in seen:
                raise ValueError(
                    f"{where}.slug: {chapter.slug!r} is already used by {seen[chapter.slug]}"
                )
            seen[chapter.slug] = where
            for s, scene in enumerate(chapter.scenes):
                where = f"chapters[{c}].scenes[{s}]"
                if scene.slug in seen:
                    raise ValueError(
                        f"{where}.slug: {scene.slug!r} is already used by {seen[scene.slug]}"
                    )
                seen[scene.slug] = where
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def sha(self) -> str:
        return content_hash(self.canonical())

    def scene_index(self) -> dict[str, tuple[str, StoryScene]]:
        """scene slug -> (chapter slug, scene)."""
        return {s.slug: (c.slug, s) for c in self.chapters for s in c.scenes}

    def chapter_index(self) -> dict[str, StoryChapter]:
        return {c.slug: c for c in self.chapters}

    def find(self, slug: str) -> StoryChapter | StoryScene | None:
        for chapter in self.chapters:
            if chapter.slug == slug:
                return chapter
            for scene in chapter.scenes:
                if scene.slug == slug:
                    return scene
        return None


def canonical_json(data: Any) -> bytes:
    """The bytes a hash is taken of: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


# --- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str  # title | text | notes | chapter (a scene moved) | scene order | chapter order
    old: str
    new: str

    def unified(self, slug: str) -> list[str]:
        """A unified diff for text people edit; one line old -> new for short values."""
        if "\n" not in self.old and "\n" not in self.new and self.field not in ("text", "notes"):
            return [
                f"{sign} {value}" for sign, value in (("-", self.old), ("+", self.new)) if value
            ]
        return list(
            difflib.unified_diff(
                self.old.splitlines(),
                self.new.splitlines(),
                fromfile=f"a/{slug}/{self.field}",
                tofile=f"b/{slug}/{self.field}",
                lineterm="",
                n=2,
            )
        )


@dataclass(frozen=True)
class ElementChange:
    kind: Literal["chapter", "scene"]
    slug: str
    change: Literal["added", "removed", "changed"]
    # What changed; for an added or removed element, its whole content (so diffs show it).
    fields: tuple[FieldChange, ...] = ()
    chapter: str = ""  # for scenes: the chapter it is in (after the change; before, if removed)

    @property
    def field_names(self) -> list[str]:
        return [f.field for f in self.fields]

    def headline(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~"}[self.change]
        where = f" (chapter {self.chapter})" if self.kind == "scene" and self.chapter else ""
        what = f": {', '.join(self.field_names)}" if self.change == "changed" else ""
        return f"{mark} {self.kind} {self.slug}{where} {self.change}{what}"


@dataclass
class StoryDiff:
    changes: list[ElementChange] = field(default_factory=list)
    chapter_order: FieldChange | None = None

    @property
    def is_empty(self) -> bool:
        return not self.changes and self.chapter_order is None

    def scenes(self) -> dict[str, ElementChange]:
        return {c.slug: c for c in self.changes if c.kind == "scene"}

    def chapters(self) -> dict[str, ElementChange]:
        return {c.slug: c for c in self.changes if c.kind == "chapter"}

    def summary(self) -> str:
        counts: dict[tuple[str, str], int] = {}
        for c in self.changes:
            counts[c.kind, c.change] = counts.get((c.kind, c.change), 0) + 1
        parts = [
            f"{n} {kind}{'s' if n != 1 else ''} {change}"
            for (kind, change), n in sorted(counts.items())
        ]
        if self.chapter_order:
            parts.append("chapter order changed")
        return ", ".join(parts) or "no changes"

    def render(self, with_text: bool = True) -> str:
        if self.is_empty:
            return "no changes"
        lines: list[str] = []
        if self.chapter_order:
            lines.append("~ chapter order")
            lines += ["    " + line for line in self.chapter_order.unified("chapters")]
        for change in self.changes:
            lines.append(change.headline())
            if with_text:
                for f in change.fields:
                    lines += ["    " + line for line in f.unified(change.slug)]
        return "\n".join(lines)


def _relative_order(seq: list[str], keep: set[str]) -> list[str]:
    return [x for x in seq if x in keep]


def _content(
    element: StoryChapter | StoryScene, names: tuple[str, ...], removed: bool = False
) -> tuple[FieldChange, ...]:
    values = [(name, getattr(element, name)) for name in names if getattr(element, name)]
    if removed:
        return tuple(FieldChange(name, value, "") for name, value in values)
    return tuple(FieldChange(name, "", value) for name, value in values)


def diff_trees(old: StoryTree, new: StoryTree) -> StoryDiff:
    """Added / removed / changed chapters and scenes, keyed by slug, in the new tree's order."""
    diff = StoryDiff()
    old_chapters, new_chapters = old.chapter_index(), new.chapter_index()
    old_scenes, new_scenes = old.scene_index(), new.scene_index()

    common = set(old_chapters) & set(new_chapters)
    before = _relative_order([c.slug for c in old.chapters], common)
    after = _relative_order([c.slug for c in new.chapters], common)
    if before != after:
        diff.chapter_order = FieldChange("chapter order", "\n".join(before), "\n".join(after))

    def chapter_change(chapter: StoryChapter) -> ElementChange | None:
        previous = old_chapters.get(chapter.slug)
        if previous is None:
            return ElementChange(
                "chapter", chapter.slug, "added", _content(chapter, CHAPTER_FIELDS)
            )
        fields = [
            FieldChange(name, getattr(previous, name), getattr(chapter, name))
            for name in CHAPTER_FIELDS
            if getattr(previous, name) != getattr(chapter, name)
        ]
        stayed = {s.slug for s in previous.scenes} & {s.slug for s in chapter.scenes}
        was = _relative_order([s.slug for s in previous.scenes], stayed)
        now = _relative_order([s.slug for s in chapter.scenes], stayed)
        if was != now:
            fields.append(FieldChange("scene order", "\n".join(was), "\n".join(now)))
        return ElementChange("chapter", chapter.slug, "changed", tuple(fields)) if fields else None

    def scene_change(chapter: str, scene: StoryScene) -> ElementChange | None:
        previous = old_scenes.get(scene.slug)
        if previous is None:
            fields = _content(scene, SCENE_FIELDS)
            return ElementChange("scene", scene.slug, "added", fields, chapter=chapter)
        old_chapter, old_scene = previous
        fields = []
        if old_chapter != chapter:
            fields.append(FieldChange("chapter", old_chapter, chapter))
        fields += [
            FieldChange(name, getattr(old_scene, name), getattr(scene, name))
            for name in SCENE_FIELDS
            if getattr(old_scene, name) != getattr(scene, name)
        ]
        if not fields:
            return None
        return ElementChange("scene", scene.slug, "changed", tuple(fields), chapter=chapter)

    for chapter in new.chapters:
        if (change := chapter_change(chapter)) is not None:
            diff.changes.append(change)
        for scene in chapter.scenes:
            if (change := scene_change(chapter.slug, scene)) is not None:
                diff.changes.append(change)
    for chapter in old.chapters:
        for scene in chapter.scenes:
            if scene.slug not in new_scenes:
                fields = _content(scene, SCENE_FIELDS, removed=True)
                diff.changes.append(
                    ElementChange("scene", scene.slug, "removed", fields, chapter=chapter.slug)
                )
        if chapter.slug not in new_chapters:
            fields = _content(chapter, CHAPTER_FIELDS, removed=True)
            diff.changes.append(ElementChange("chapter", chapter.slug, "removed", fields))
    return diff


__all__ = [
    "CHAPTER_FIELDS",
    "SCENE_FIELDS",
    "ElementChange",
    "FieldChange",
    "StoryChapter",
    "StoryDiff",
    "StoryScene",
    "StorySlug",
    "StoryTree",
    "canonical_json",
    "commit_content",
    "commit_sha",
    "format_commit_time",
    "content_hash",
    "diff_trees",
    "normalize_text",
]


# --- commits ---------------------------------------------------------------------------------


def format_commit_time(moment: datetime) -> str:
    """The one text form of a commit time that goes into its hash: UTC, microseconds."""
    if moment.tzinfo is None:
        raise ValueError(f"commit time {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def commit_content(
    tree_sha: str, parents: list[str], author: str, message: str, committed_at: datetime
) -> dict[str, Any]:
    return {
        "format": "tower-anime/story-commit/1",
        "tree": tree_sha,
        "parents": list(parents),
        "author": author,
        "message": message,
        "committed_at": format_commit_time(committed_at),
    }


def commit_sha(
    tree_sha: str, parents: list[str], author: str, message: str, committed_at: datetime
) -> str:
    """A commit's id: the hash of everything it records, its parents' ids included."""
    return content_hash(commit_content(tree_sha, parents, author, message, committed_at))
