"""What a writer asks a story's history, as of git: the log of one scene, who wrote each line
(blame), and undoing one commit (revert).

Everything walks first parents, the line a branch itself followed; a revert is the three-way
merge of the branch head with the commit's first parent against the commit, so a later edit
of the same scene is a conflict, not silently undone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from db.models import BranchMoveKind, Story, StoryCommit
from db.story import (
    MergeConflictError,
    StoryError,
    _check_expected,
    _move,
    commit_changes,
    commits_by_sha,
    get_branch,
    load_graph,
    resolve,
    tree_of,
    write_commit,
)
from db.storyline.merge import MergeConflict, merge_trees
from db.storyline.tree import ElementChange, StoryChapter, StoryScene, StoryTree


def _first_parent_line(session: Session, story: Story, ref: str) -> list[StoryCommit]:
    head = resolve(session, story, ref)
    shas = load_graph(session, story).log(head.sha, first_parent=True)
    commits = commits_by_sha(session, story, shas)
    return [commits[s] for s in shas]


def scene_log(
    session: Session, story: Story, slug: str, ref: str | None = None, limit: int | None = None
) -> list[tuple[StoryCommit, ElementChange]]:
    """The commits that changed chapter or scene ``slug``, newest first, with the change."""
    found: list[tuple[StoryCommit, ElementChange]] = []
    seen_anywhere = False
    for commit in _first_parent_line(session, story, ref or story.default_branch):
        if tree_of(commit).find(slug) is not None:
            seen_anywhere = True
        changes = commit_changes(commit)
        change = changes.scenes().get(slug) or changes.chapters().get(slug)
        if change is not None:
            seen_anywhere = True
            found.append((commit, change))
            if limit is not None and len(found) >= limit:
                break
    if not seen_anywhere:
        raise StoryError(f"no chapter or scene {slug!r} in the history of {story.label}")
    return found


# --- blame -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlameLine:
    commit: StoryCommit
    line: str


@dataclass(frozen=True)
class BlamedElement:
    kind: str  # chapter | scene
    slug: str
    lines: list[BlameLine]


def element_lines(element: StoryChapter | StoryScene | None) -> list[str]:
    """An element as the lines blame attributes: its heading, its notes, its text."""
    if element is None:
        return []
    marks = "##" if isinstance(element, StoryScene) else "#"
    lines = [f"{marks} {element.title}".rstrip()]
    lines += [f"> {n}".rstrip() for n in element.notes.split("\n")] if element.notes else []
    if isinstance(element, StoryScene) and element.text:
        lines += element.text.split("\n")
    return lines


def blame(
    session: Session, story: Story, ref: str | None = None, slug: str | None = None
) -> list[BlamedElement]:
    """Each line of each chapter and scene at ``ref`` with the commit that wrote it last."""
    line = _first_parent_line(session, story, ref or story.default_branch)
    tree = tree_of(line[0])
    if slug is not None and tree.find(slug) is None:
        raise StoryError(f"no chapter or scene {slug!r} at {line[0].short} of {story.label}")
    elements = [
        (kind, element)
        for chapter in tree.chapters
        for kind, element in [("chapter", chapter), *(("scene", s) for s in chapter.scenes)]
        if slug is None or element.slug == slug
    ]
    trees: list[StoryTree] = [tree] + [tree_of(c) for c in line[1:]]
    out: list[BlamedElement] = []
    for kind, element in elements:
        current = element_lines(element)
        owners: list[StoryCommit | None] = [None] * len(current)
        # Index in the version being looked at, for each line not yet attributed.
        open_lines = {i: i for i in range(len(current))}
        newer = current
        for depth, commit in enumerate(line):
            older_tree = trees[depth + 1] if depth + 1 < len(trees) else None
            older = element_lines(older_tree.find(element.slug)) if older_tree else []
            matcher = difflib.SequenceMatcher(a=older, b=newer, autojunk=False)
            kept: dict[int, int] = {}
            for block in matcher.get_matching_blocks():
                for k in range(block.size):
                    kept[block.b + k] = block.a + k
            still_open = {}
            for original, position in open_lines.items():
                if position in kept:
                    still_open[original] = kept[position]
                else:
                    owners[original] = commit
            open_lines, newer = still_open, older
            if not open_lines:
                break
        for original in open_lines:  # unreachable in practice: the root owns what is left
            owners[original] = line[-1]
        out.append(
            BlamedElement(
                kind,
                element.slug,
                [BlameLine(o, t) for o, t in zip(owners, current, strict=True) if o is not None],
            )
        )
    return out


# --- revert ----------------------------------------------------------------------------------


def revert(
    session: Session,
    story: Story,
    ref: str,
    branch: str | None = None,
    *,
    author: str,
    message: str | None = None,
    expected_head: str | None = None,
    resolutions: dict[str, str] | None = None,
) -> tuple[StoryCommit, StoryCommit]:
    """Commit on ``branch`` the undoing of commit ``ref`` (against its first parent).

    Returns (the reverted commit, the new commit). Where a later commit changed what ``ref``
    changed, that is a conflict (nothing is written) unless ``resolutions`` settles it
    ("ours": keep the branch's version, "theirs": take the version before ``ref``).
    """
    name = branch or story.default_branch
    target = get_branch(session, story, name, lock=True)
    if expected_head:
        _check_expected(target, story, expected_head)
    undone = resolve(session, story, ref)
    if not load_graph(session, story).is_ancestor(undone.sha, target.head.sha):
        raise StoryError(f"{undone.short} is not in the history of {name}: nothing to revert")
    parents = undone.parents
    before = tree_of(parents[0]) if parents else StoryTree()
    try:
        outcome = merge_trees(
            tree_of(undone),
            tree_of(target.head),
            before,
            ours_name=name,
            theirs_name=f"before {undone.short}",
            resolutions=resolutions,
        )
    except ValueError as exc:
        raise StoryError(str(exc)) from None
    if not outcome.clean or outcome.tree is None:
        listing = "\n".join(f"  {c}" for c in outcome.conflicts)
        raise MergeConflictError(
            f"reverting {undone.short} on {name} conflicts with later commits "
            f"({len(outcome.conflicts)}); nothing was written:\n{listing}",
            outcome.conflicts,
        )
    if outcome.tree.sha == target.head.snapshot.sha:
        raise StoryError(
            f"reverting {undone.short} would leave {name} as it is (its changes are gone "
            "already, or the resolutions keep them): nothing to revert"
        )
    first = undone.message.splitlines()[0] if undone.message else undone.short
    text = message or f'Revert "{first}"\n\nThis reverts commit {undone.sha}.'
    new = write_commit(session, story, outcome.tree, [target.head], author, text)
    _move(session, target, new, BranchMoveKind.COMMIT, author, text)
    return undone, new


__all__ = [
    "BlameLine",
    "BlamedElement",
    "MergeConflict",
    "blame",
    "element_lines",
    "revert",
    "scene_log",
]
