"""Small edits to a story tree, for `anime story commit` without opening an editor.

Each edit returns a new, validated tree and never changes the one it was given; a bad edit
raises ``StoryEditError`` naming the slug and what is wrong.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from db.storyline.tree import CHAPTER_FIELDS, SCENE_FIELDS, StoryTree


class StoryEditError(ValueError):
    pass


def _data(tree: StoryTree) -> dict[str, Any]:
    return tree.canonical()


def _validated(data: dict[str, Any], what: str) -> StoryTree:
    try:
        return StoryTree.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise StoryEditError(f"{what}: {problems}") from None


def _insert(items: list[Any], item: Any, position: int | None, what: str) -> None:
    if position is None:
        items.append(item)
        return
    if not 1 <= position <= len(items) + 1:
        raise StoryEditError(f"{what}: position {position} is outside 1..{len(items) + 1}")
    items.insert(position - 1, item)


def _chapter(data: dict[str, Any], slug: str, what: str) -> dict[str, Any]:
    for chapter in data["chapters"]:
        if chapter["slug"] == slug:
            return chapter
    known = ", ".join(c["slug"] for c in data["chapters"]) or "none"
    raise StoryEditError(f"{what}: no chapter {slug!r} (chapters: {known})")


def add_chapter(
    tree: StoryTree, slug: str, title: str = "", position: int | None = None
) -> StoryTree:
    data = _data(tree)
    what = f"add chapter {slug}"
    _insert(data["chapters"], {"slug": slug, "title": title, "scenes": []}, position, what)
    return _validated(data, what)


def add_scene(
    tree: StoryTree,
    chapter: str,
    slug: str,
    title: str = "",
    text: str = "",
    position: int | None = None,
) -> StoryTree:
    data = _data(tree)
    what = f"add scene {slug}"
    scenes = _chapter(data, chapter, what)["scenes"]
    _insert(scenes, {"slug": slug, "title": title, "text": text}, position, what)
    return _validated(data, what)


def set_field(tree: StoryTree, slug: str, field: str, value: str) -> StoryTree:
    """Set title, text or notes of the chapter or scene called ``slug``."""
    data = _data(tree)
    what = f"set {slug}.{field}"
    for chapter in data["chapters"]:
        if chapter["slug"] == slug:
            if field not in CHAPTER_FIELDS:
                raise StoryEditError(f"{what}: a chapter has {', '.join(CHAPTER_FIELDS)}")
            chapter[field] = value
            return _validated(data, what)
        for scene in chapter["scenes"]:
            if scene["slug"] == slug:
                if field not in SCENE_FIELDS:
                    raise StoryEditError(f"{what}: a scene has {', '.join(SCENE_FIELDS)}")
                scene[field] = value
                return _validated(data, what)
    raise StoryEditError(f"{what}: no chapter or scene {slug!r}")


def move_scene(tree: StoryTree, slug: str, chapter: str, position: int | None = None) -> StoryTree:
    data = _data(tree)
    what = f"move scene {slug}"
    target = _chapter(data, chapter, what)
    for source in data["chapters"]:
        for index, scene in enumerate(source["scenes"]):
            if scene["slug"] == slug:
                del source["scenes"][index]
                _insert(target["scenes"], scene, position, what)
                return _validated(data, what)
    raise StoryEditError(f"{what}: no scene {slug!r}")


def remove(tree: StoryTree, slug: str) -> StoryTree:
    """Remove a scene, or a chapter with all its scenes."""
    data = _data(tree)
    for index, chapter in enumerate(data["chapters"]):
        if chapter["slug"] == slug:
            del data["chapters"][index]
            return _validated(data, f"remove {slug}")
        for position, scene in enumerate(chapter["scenes"]):
            if scene["slug"] == slug:
                del chapter["scenes"][position]
                return _validated(data, f"remove {slug}")
    raise StoryEditError(f"remove {slug}: no chapter or scene {slug!r}")


__all__ = ["StoryEditError", "add_chapter", "add_scene", "move_scene", "remove", "set_field"]
