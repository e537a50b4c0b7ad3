"""The ``stories:`` section of a production file: every commit and branch of each story.

Commits are listed parents first. A commit's ``id`` is the hash of its content and is checked
when given; ``id``, ``parents`` and branch ``head`` may be written as unique prefixes (7+ hex
digits) of ids earlier in the list. A commit holds its whole ``tree``, or ``tree_changes``
against its first parent's tree: the chapter order, and only the chapters that differ (whole).
Exports use the shorter of the two, so a long history does not repeat every chapter each time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from db.storyline.tree import StoryChapter, StorySlug, StoryTree, commit_sha

if TYPE_CHECKING:
    from db.production_file import ProductionFile

MIN_ID_PREFIX = 7
CommitId = Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
BranchName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")]


class _Exact(BaseModel):
    # No whitespace stripping: an author or message is hashed exactly as written.
    model_config = ConfigDict(extra="forbid")


_OPTIONAL = ("id", "tree", "tree_changes")


class TreeChangesSpec(_Exact):
    """A tree as its first parent's, with the chapters listed here in place of theirs."""

    chapter_order: list[StorySlug]
    chapters: list[StoryChapter] = Field(default_factory=list)


class StoryCommitSpec(_Exact):
    id: CommitId | None = None
    parents: list[CommitId] = Field(default_factory=list)
    author: str = Field(min_length=1, max_length=200)
    message: str = ""
    committed_at: AwareDatetime
    tree: StoryTree | None = None
    tree_changes: TreeChangesSpec | None = None

    @model_validator(mode="after")
    def _one_tree(self) -> StoryCommitSpec:
        if self.tree is not None and self.tree_changes is not None:
            raise ValueError("give tree or tree_changes, not both")
        if self.tree_changes is not None and not self.parents:
            raise ValueError("tree_changes need a parent to change")
        return self

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An exported commit carries its tree or its tree_changes, never a null of the other.
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in _OPTIONAL}


class StoryBranchSpec(_Exact):
    name: BranchName
    head: CommitId


class StorySpec(_Exact):
    slug: StorySlug
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    default_branch: BranchName = "main"
    commits: list[StoryCommitSpec] = Field(min_length=1)
    branches: list[StoryBranchSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_branches(self) -> StorySpec:
        names = [b.name for b in self.branches]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"branches[{index}] repeats name {name!r}")
        if self.default_branch not in names:
            raise ValueError(
                f"default_branch {self.default_branch!r} is not among the branches "
                f"({', '.join(names)})"
            )
        return self


@dataclass
class ResolvedCommit:
    sha: str
    parents: list[str]
    tree: StoryTree
    spec: StoryCommitSpec


@dataclass
class ResolvedStory:
    """A story section with every id made whole and checked; what the importer writes."""

    spec: StorySpec
    commits: list[ResolvedCommit] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def commit(self, ref: str) -> ResolvedCommit | None:
        """A branch name or a unique id prefix within this story section."""
        if ref in self.heads:
            ref = self.heads[ref]
        found = [c for c in self.commits if c.sha.startswith(ref.lower())]
        return found[0] if len(found) == 1 and len(ref) >= 4 else None


def _unique(prefix: str, candidates: list[str]) -> str | None | list[str]:
    found = [c for c in candidates if c.startswith(prefix)]
    if len(found) == 1:
        return found[0]
    return found or None


def resolve_story(spec: StorySpec, where: str) -> ResolvedStory:
    resolved = ResolvedStory(spec)
    shas: list[str] = []
    trees: dict[str, StoryTree] = {}  # commit id -> tree

    def lookup(prefix: str, candidates: list[str], what: str, path: str) -> str | None:
        hit = _unique(prefix, candidates)
        if isinstance(hit, str):
            return hit
        if hit is None:
            resolved.problems.append((path, f"no {what} {prefix} earlier in the list"))
        else:
            resolved.problems.append((path, f"{prefix} is the start of several {what}s"))
        return None

    for index, commit in enumerate(spec.commits):
        path = f"{where}.commits[{index}]"
        parents = [
            lookup(p, shas, "commit", f"{path}.parents[{i}]") for i, p in enumerate(commit.parents)
        ]
        if None in parents:
            continue
        tree: StoryTree | None = commit.tree or StoryTree()
        if commit.tree_changes is not None:
            try:
                tree = apply_tree_changes(trees[parents[0] or ""], commit.tree_changes)
            except ValueError as exc:
                resolved.problems.append((f"{path}.tree_changes", str(exc)))
                continue
        if len(set(parents)) != len(parents):
            resolved.problems.append((f"{path}.parents", "lists the same commit twice"))
            continue
        full = [p for p in parents if p is not None]
        sha = commit_sha(tree.sha, full, commit.author, commit.message, commit.committed_at)
        if commit.id is not None and not sha.startswith(commit.id):
            resolved.problems.append(
                (
                    f"{path}.id",
                    f"{commit.id} does not match the commit's content (its id is {sha}): "
                    "the commit was edited after it was made, or its id was mistyped",
                )
            )
            continue
        if sha in shas:
            resolved.problems.append((path, f"the same commit as an earlier one ({sha[:12]})"))
            continue
        shas.append(sha)
        trees[sha] = tree
        resolved.commits.append(ResolvedCommit(sha, full, tree, commit))
    for index, branch in enumerate(spec.branches):
        head = lookup(branch.head, shas, "commit", f"{where}.branches[{index}].head")
        if head is not None:
            resolved.heads[branch.name] = head
    return resolved


def apply_tree_changes(base: StoryTree, changes: TreeChangesSpec) -> StoryTree:
    given = {c.slug: c for c in changes.chapters}
    kept = base.chapter_index()
    chapters = []
    for slug in changes.chapter_order:
        chapter = given.get(slug) or kept.get(slug)
        if chapter is None:
            raise ValueError(f"chapter {slug!r} is neither in the parent's tree nor in chapters")
        chapters.append(chapter.model_dump())
    unplaced = sorted(set(given) - set(changes.chapter_order))
    if unplaced:
        raise ValueError(f"chapters {', '.join(unplaced)} are missing from chapter_order")
    try:
        return StoryTree.model_validate({"chapters": chapters})
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None


def tree_changes(base: StoryTree, tree: StoryTree) -> dict[str, Any] | None:
    """``tree`` as changes to ``base`` when that is shorter than the whole tree, else None."""
    before = base.chapter_index()
    changed = [c for c in tree.chapters if before.get(c.slug) != c]
    if len(changed) >= len(tree.chapters):
        return None
    return {
        "chapter_order": [c.slug for c in tree.chapters],
        "chapters": [c.model_dump() for c in changed],
    }


def story_section_problems(production: ProductionFile) -> list[tuple[str, str]]:
    """Checks a file can answer by itself: ids, parents, heads, and episodes' story links to
    stories in the file (links to stories only in the database are checked on import)."""
    problems: list[tuple[str, str]] = []
    stories: dict[str, ResolvedStory] = {}
    for index, spec in enumerate(production.stories):
        where = f"stories[{index}]"
        if spec.slug in stories:
            problems.append((f"{where}.slug", f"repeats story {spec.slug!r}"))
            continue
        resolved = resolve_story(spec, where)
        problems += resolved.problems
        stories[spec.slug] = resolved
    for e, episode in enumerate(production.episodes):
        where = f"episodes[{e}]"
        if episode.story_commit is None:
            if episode.story_branch or episode.story_scenes:
                problems.append((f"{where}.story_commit", "story_branch/story_scenes need it"))
            continue
        slug, ref = split_story_ref(episode.story_commit)
        if slug is None and ref is None:
            problems.append(
                (f"{where}.story_commit", "write story@branch, story@commit or a commit id")
            )
            continue
        found = [stories[slug]] if slug in stories else []
        if slug is None:
            found = [s for s in stories.values() if s.commit(ref) is not None]
        if not found:
            continue  # a story already in the database: checked on import
        story = found[0]
        commit = story.commit(ref)
        if commit is None:
            known = ", ".join(story.heads) or "none"
            problems.append(
                (
                    f"{where}.story_commit",
                    f"story {story.spec.slug} has no branch or commit {ref!r} (branches: {known})",
                )
            )
            continue
        if episode.story_branch and episode.story_branch not in story.heads:
            problems.append(
                (
                    f"{where}.story_branch",
                    f"story {story.spec.slug} has no branch {episode.story_branch!r}",
                )
            )
        for s, scene in enumerate(episode.story_scenes):
            if commit.tree.find(scene) is None:
                problems.append(
                    (
                        f"{where}.story_scenes[{s}]",
                        f"story {story.spec.slug} at {commit.sha[:10]} has no scene or chapter "
                        f"{scene!r}",
                    )
                )
    return problems


def split_story_ref(spec: str) -> tuple[str | None, str | None]:
    """``story@ref`` -> (story, ref); a bare commit id -> (None, id); nonsense -> (None, None)."""
    if "@" in spec:
        story, ref = spec.split("@", 1)
        return (story, ref) if story and ref else (None, None)
    if re.match(r"^[0-9a-f]{4,64}$", spec):
        return None, spec
    return None, None


__all__ = [
    "ResolvedStory",
    "StoryBranchSpec",
    "StoryCommitSpec",
    "StorySpec",
    "TreeChangesSpec",
    "apply_tree_changes",
    "resolve_story",
    "split_story_ref",
    "story_section_problems",
    "tree_changes",
]
