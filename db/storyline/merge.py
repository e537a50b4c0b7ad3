"""Three-way merge of story trees against their merge base.

Each chapter and scene is merged field by field (a scene's chapter is one of its fields), so
edits to different fields or different elements combine. The same field changed differently on
both sides, an element changed on one side and deleted on the other, or an order both sides
rearranged differently is a conflict: the merge then yields no tree at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from db.storyline.tree import CHAPTER_FIELDS, SCENE_FIELDS, StoryTree

_Element = dict[str, Any]  # field -> value; None stands for "not there"
Side = Literal["ours", "theirs"]
SIDES: tuple[str, ...] = ("ours", "theirs")


@dataclass(frozen=True)
class MergeConflict:
    kind: str  # chapter | scene | order
    slug: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.slug}: {self.reason}"


@dataclass
class MergeOutcome:
    tree: StoryTree | None
    conflicts: list[MergeConflict] = field(default_factory=list)
    # Conflicts settled by a resolution the caller gave, with the side taken.
    resolved: list[tuple[MergeConflict, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


class _Conflict(Exception):
    pass


def _merge_value(base: Any, ours: Any, theirs: Any) -> Any:
    if ours == theirs:
        return ours
    if ours == base:
        return theirs
    if theirs == base:
        return ours
    raise _Conflict


def _merge_element(
    kind: str,
    slug: str,
    base: _Element | None,
    ours: _Element | None,
    theirs: _Element | None,
    names: tuple[str, str],
    conflicts: list[MergeConflict],
    resolution: str | None = None,
    resolved: list[tuple[MergeConflict, str]] | None = None,
) -> _Element | None:
    def conflict(found: MergeConflict) -> _Element | None:
        if resolution is None:
            conflicts.append(found)
            return None
        if resolved is not None:
            resolved.append((found, resolution))
        return ours if resolution == "ours" else theirs

    ours_name, theirs_name = names
    if ours is None and theirs is None:
        return None
    if base is None and (ours is None or theirs is None):
        return ours if ours is not None else theirs  # added on one side only
    if base is not None and (ours is None or theirs is None):
        kept, deleter, keeper = (theirs, ours_name, theirs_name)
        if theirs is None:
            kept, deleter, keeper = (ours, theirs_name, ours_name)
        if kept == base:
            return None  # deleted on one side, untouched on the other
        changed = ", ".join(k for k in kept if kept[k] != base.get(k))
        return conflict(
            MergeConflict(kind, slug, f"changed on {keeper} ({changed}) but removed on {deleter}")
        )
    assert ours is not None and theirs is not None
    merged: _Element = {}
    clashing: list[str] = []
    for key in ours:
        try:
            merged[key] = _merge_value(base.get(key) if base else None, ours[key], theirs[key])
        except _Conflict:
            clashing.append(key)
    if clashing:
        how = "added on both sides with different" if base is None else "changed differently on"
        where = "" if base is None else f" {ours_name} and {theirs_name}"
        return conflict(MergeConflict(kind, slug, f"{', '.join(clashing)} {how}{where}".strip()))
    return merged


def merge_order(
    base: list[str], ours: list[str], theirs: list[str], members: set[str]
) -> list[str] | None:
    """Order ``members`` so that each side's rearrangement survives; None when both rearranged.

    Elements only one side placed here (new ones, or moved in) go right after the element that
    precedes them on that side; at the end if they end it, at the start if they start it.
    """
    in_base = set(base)

    def relative(seq: list[str]) -> list[str]:
        return [x for x in seq if x in in_base and x in members]

    b, o, t = relative(base), relative(ours), relative(theirs)
    if o in (t, b) or t == b:
        primary, secondary = (theirs, ours) if o == b and t != b else (ours, theirs)
    else:
        return None
    result: list[str] = []
    for x in primary:
        if x in members and x not in result:
            result.append(x)
    for i, x in enumerate(secondary):
        if x not in members or x in result:
            continue
        following = [n for n in secondary[i + 1 :] if n in result]
        preceding = [p for p in secondary[:i] if p in result]
        if not following:
            result.append(x)  # it ended its side, so it ends the merge too
        elif preceding:
            result.insert(result.index(preceding[-1]) + 1, x)
        else:
            result.insert(result.index(following[0]), x)
    result += sorted(members - set(result))
    return result


def _chapters(tree: StoryTree | None) -> dict[str, _Element]:
    if tree is None:
        return {}
    return {c.slug: {k: getattr(c, k) for k in CHAPTER_FIELDS} for c in tree.chapters}


def _scenes(tree: StoryTree | None) -> dict[str, _Element]:
    if tree is None:
        return {}
    return {
        s.slug: {"chapter": c.slug, **{k: getattr(s, k) for k in SCENE_FIELDS}}
        for c in tree.chapters
        for s in c.scenes
    }


def _scene_order(tree: StoryTree | None, chapter: str) -> list[str]:
    found = tree.chapter_index().get(chapter) if tree else None
    return [s.slug for s in found.scenes] if found else []


def merge_trees(
    base: StoryTree | None,
    ours: StoryTree,
    theirs: StoryTree,
    ours_name: str = "ours",
    theirs_name: str = "theirs",
    resolutions: Mapping[str, str] | None = None,
) -> MergeOutcome:
    """Combine both sides' changes since ``base``; report every conflict, not just the first.

    ``resolutions`` settles conflicts by slug (a chapter, a scene, or ``chapters`` for the
    order of chapters): "ours" or "theirs" takes that side's version of the element whole.
    """
    conflicts: list[MergeConflict] = []
    resolved: list[tuple[MergeConflict, str]] = []
    names = (ours_name, theirs_name)
    resolutions = dict(resolutions or {})
    unknown = {side for side in resolutions.values() if side not in SIDES}
    if unknown:
        raise ValueError(f"a resolution is ours or theirs, not {', '.join(sorted(unknown))}")

    base_ch, ours_ch, theirs_ch = _chapters(base), _chapters(ours), _chapters(theirs)
    chapters: dict[str, _Element] = {}
    for slug in {**base_ch, **ours_ch, **theirs_ch}:
        merged = _merge_element(
            "chapter",
            slug,
            base_ch.get(slug),
            ours_ch.get(slug),
            theirs_ch.get(slug),
            names,
            conflicts,
            resolutions.get(slug),
            resolved,
        )
        if merged is not None:
            chapters[slug] = merged

    base_sc, ours_sc, theirs_sc = _scenes(base), _scenes(ours), _scenes(theirs)
    scenes: dict[str, _Element] = {}
    for slug in {**base_sc, **ours_sc, **theirs_sc}:
        merged = _merge_element(
            "scene",
            slug,
            base_sc.get(slug),
            ours_sc.get(slug),
            theirs_sc.get(slug),
            names,
            conflicts,
            resolutions.get(slug),
            resolved,
        )
        if merged is not None:
            scenes[slug] = merged

    for slug, scene in sorted(scenes.items()):
        if scene["chapter"] not in chapters:
            found = MergeConflict(
                "scene", slug, f"belongs in chapter {scene['chapter']}, which one side removed"
            )
            if slug in resolutions:  # the chapter is gone: resolving the scene drops it
                resolved.append((found, resolutions[slug]))
                del scenes[slug]
            else:
                conflicts.append(found)

    def order_of(tree: StoryTree | None) -> list[str]:
        return [c.slug for c in tree.chapters] if tree else []

    def side_order(slug: str, orders: tuple[list[str], list[str]], members: set[str]):
        chosen = orders[SIDES.index(resolutions[slug])]
        return [x for x in chosen if x in members] + sorted(members - set(chosen))

    chapter_order = merge_order(order_of(base), order_of(ours), order_of(theirs), set(chapters))
    if chapter_order is None:
        found = MergeConflict(
            "order", "chapters", f"reordered differently on {ours_name} and {theirs_name}"
        )
        if "chapters" in resolutions:
            resolved.append((found, resolutions["chapters"]))
            sides = (order_of(ours), order_of(theirs))
            chapter_order = side_order("chapters", sides, set(chapters))
        else:
            conflicts.append(found)

    if conflicts:
        return MergeOutcome(None, sorted(conflicts, key=lambda c: (c.kind, c.slug)), resolved)

    assert chapter_order is not None
    tree_chapters: list[dict[str, Any]] = []
    for chapter in chapter_order:
        members = {slug for slug, s in scenes.items() if s["chapter"] == chapter}
        order = merge_order(
            _scene_order(base, chapter),
            _scene_order(ours, chapter),
            _scene_order(theirs, chapter),
            members,
        )
        if order is None:
            found = MergeConflict(
                "order", chapter, f"scenes reordered differently on {ours_name} and {theirs_name}"
            )
            if chapter not in resolutions:
                conflicts.append(found)
                continue
            resolved.append((found, resolutions[chapter]))
            sides = (_scene_order(ours, chapter), _scene_order(theirs, chapter))
            order = side_order(chapter, sides, members)
        tree_chapters.append(
            {
                "slug": chapter,
                **chapters[chapter],
                "scenes": [
                    {"slug": slug, **{k: scenes[slug][k] for k in SCENE_FIELDS}} for slug in order
                ],
            }
        )
    if conflicts:
        return MergeOutcome(None, conflicts, resolved)
    return MergeOutcome(StoryTree.model_validate({"chapters": tree_chapters}), [], resolved)


def present_side(conflict: MergeConflict, ours: StoryTree, theirs: StoryTree) -> str:
    """The side whose version of a conflicting element exists (ours when both do): what a
    checkout with conflict markers places, so the element has a place in the file."""
    if conflict.kind == "order":
        return "ours"
    return "ours" if ours.find(conflict.slug) is not None else "theirs"


__all__ = [
    "SIDES",
    "MergeConflict",
    "MergeOutcome",
    "Side",
    "merge_order",
    "merge_trees",
    "present_side",
]
