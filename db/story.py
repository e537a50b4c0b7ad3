"""Version control of stories: commit, branch, log, diff, checkout, merge; episodes' story links.

Plain functions on a Session: the caller's transaction (``session_scope``) makes each operation
all or nothing. Branch heads are locked (SELECT ... FOR UPDATE) before they are compared with
the parent an edit was based on, so two people committing at once cannot overwrite each other:
the second gets ``StaleHeadError``. A merge with conflicts raises before anything is written.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import (
    BranchMoveKind,
    Episode,
    Project,
    Story,
    StoryAdaptation,
    StoryBranch,
    StoryBranchMove,
    StoryCommit,
    StoryCommitParent,
    StorySnapshot,
)

# The storyline algebra (pydantic trees, diffs, merges) is imported by the functions that build
# trees: `anime story log`, `branch` and `list`, and `anime status` while no adapted story moved,
# read rows only and start faster without pydantic.
if TYPE_CHECKING:
    from db.storyline.merge import MergeConflict
    from db.storyline.tree import ElementChange, StoryDiff, StoryTree

BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_ANCESTOR = re.compile(r"^(.+?)~(\d+)$")
MIN_PREFIX = 4


class StoryError(ValueError):
    """A story operation that cannot be done; the message says why and what to do."""


class StaleHeadError(StoryError):
    """The branch moved on since the edit was based on it (optimistic check failed)."""


class MergeConflictError(StoryError):
    def __init__(self, message: str, conflicts: list[MergeConflict]) -> None:
        self.conflicts = conflicts
        super().__init__(message)


# --- stories and refs ------------------------------------------------------------------------


def _project(session: Session, project: Project | str) -> Project:
    if isinstance(project, Project):
        return project
    found = session.scalar(select(Project).where(Project.slug == project))
    if found is None:
        raise StoryError(f"no project {project!r}")
    return found


def get_story(session: Session, project: Project | str, slug: str) -> Story:
    project = _project(session, project)
    story = session.scalar(select(Story).where(Story.project_id == project.id, Story.slug == slug))
    if story is None:
        known = ", ".join(s.slug for s in list_stories(session, project)) or "none"
        raise StoryError(f"project {project.slug} has no story {slug!r} (stories: {known})")
    return story


def find_story(session: Session, spec: str) -> Story:
    """``project/story``, or just ``story`` when only one project has a story by that slug."""
    if "/" in spec:
        project, slug = spec.split("/", 1)
        return get_story(session, project, slug)
    found = list(session.scalars(select(Story).where(Story.slug == spec)))
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoryError(f"no story {spec!r} in any project (`anime story list` shows them)")
    projects = ", ".join(sorted(s.project.slug for s in found))
    raise StoryError(f"several projects have a story {spec!r} ({projects}): write project/{spec}")


def list_stories(session: Session, project: Project | str | None = None) -> list[Story]:
    query = select(Story).join(Project).order_by(Project.slug, Story.slug)
    if project is not None:
        query = query.where(Story.project_id == _project(session, project).id)
    return list(session.scalars(query))


def _check_branch_name(name: str) -> None:
    if not BRANCH_NAME.match(name) or ".." in name or name.endswith("/"):
        raise StoryError(
            f"branch name {name!r} is not allowed: letters, digits, '.', '_', '-', '/' "
            "(starting with a letter or digit, at most 100 characters)"
        )


def list_branches(session: Session, story: Story) -> list[StoryBranch]:
    return list(
        session.scalars(
            select(StoryBranch).where(StoryBranch.story_id == story.id).order_by(StoryBranch.name)
        )
    )


def get_branch(session: Session, story: Story, name: str, lock: bool = False) -> StoryBranch:
    query = select(StoryBranch).where(StoryBranch.story_id == story.id, StoryBranch.name == name)
    if lock:
        # Re-read the head under a row lock: a concurrent commit waits here, then sees ours.
        query = query.with_for_update().execution_options(populate_existing=True)
    branch = session.scalar(query)
    if branch is None:
        known = ", ".join(b.name for b in list_branches(session, story)) or "none"
        raise StoryError(f"story {story.slug} has no branch {name!r} (branches: {known})")
    return branch


def _find_branch(session: Session, story: Story, name: str) -> StoryBranch | None:
    return session.scalar(
        select(StoryBranch).where(StoryBranch.story_id == story.id, StoryBranch.name == name)
    )


def resolve(session: Session, story: Story, ref: str) -> StoryCommit:
    """A branch name, a commit id or a unique prefix of one (4+ hex digits); ``REF~N`` walks
    N first parents back."""
    ref = ref.strip()
    walk = _ANCESTOR.match(ref)
    if walk:
        commit = resolve(session, story, walk.group(1))
        for step in range(int(walk.group(2))):
            if not commit.parent_links:
                raise StoryError(f"{ref}: {walk.group(1)} has only {step} ancestor(s)")
            commit = commit.parents[0]
        return commit
    branch = _find_branch(session, story, ref)
    if branch is not None:
        return branch.head
    lowered = ref.lower()
    if _HEX.match(lowered):
        found = list(
            session.scalars(
                select(StoryCommit)
                .where(StoryCommit.story_id == story.id, StoryCommit.sha.startswith(lowered))
                .limit(5)
            )
        )
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            shas = ", ".join(c.short for c in found)
            raise StoryError(f"{ref!r} is the start of several commits ({shas}): give more of it")
    hint = "" if len(ref) >= MIN_PREFIX else f" (a commit prefix needs {MIN_PREFIX}+ digits)"
    branches = ", ".join(b.name for b in list_branches(session, story)) or "none"
    raise StoryError(
        f"story {story.slug} has no branch or commit {ref!r}{hint} (branches: {branches})"
    )


def tree_of(commit: StoryCommit) -> StoryTree:
    from db.storyline.tree import StoryTree

    return StoryTree.model_validate(commit.snapshot.tree)


def checkout(session: Session, story: Story, ref: str) -> tuple[StoryCommit, StoryTree]:
    commit = resolve(session, story, ref)
    return commit, tree_of(commit)


# --- the commit graph ------------------------------------------------------------------------


@dataclass
class CommitGraph:
    """Every commit of one story (sha -> parents, time): small enough to walk in memory."""

    parents: dict[str, list[str]]
    times: dict[str, datetime]

    def ancestors(self, sha: str) -> set[str]:
        """The commit and everything it descends from."""
        seen: set[str] = set()
        stack = [sha]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.parents[current])
        return seen

    def is_ancestor(self, ancestor: str, of: str) -> bool:
        return ancestor in self.ancestors(of)

    def generation(self) -> dict[str, int]:
        """Longest path to a root: an ancestor always has a smaller number than its heirs."""
        numbers: dict[str, int] = {}
        for sha in self.topological():
            numbers[sha] = 1 + max((numbers[p] for p in self.parents[sha]), default=0)
        return numbers

    def topological(self) -> list[str]:
        """Parents before children; ties by time, then id (deterministic)."""
        pending = {sha: len(set(ps)) for sha, ps in self.parents.items()}
        children: dict[str, list[str]] = {sha: [] for sha in self.parents}
        for sha, ps in self.parents.items():
            for p in set(ps):
                children[p].append(sha)
        ready = [(self.times[s], s) for s, n in pending.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, sha = heapq.heappop(ready)
            order.append(sha)
            for child in children[sha]:
                pending[child] -= 1
                if pending[child] == 0:
                    heapq.heappush(ready, (self.times[child], child))
        return order

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor: one no other common ancestor descends from (the newest,
        should criss-cross merges leave several)."""
        common = self.ancestors(a) & self.ancestors(b)
        if not common:
            return None
        generation = self.generation()
        return max(common, key=lambda s: (generation[s], self.times[s], s))

    def log(self, head: str, first_parent: bool = True) -> list[str]:
        """Newest first. First-parent: the line the branch itself followed. Otherwise every
        ancestor, children always before their parents, newer first among the rest."""
        if first_parent:
            line = [head]
            while self.parents[line[-1]]:
                line.append(self.parents[line[-1]][0])
            return line
        reach = self.ancestors(head)
        waiting = dict.fromkeys(reach, 0)
        for sha in reach:
            for p in set(self.parents[sha]):
                waiting[p] += 1
        ready = [(-self.times[head].timestamp(), head)]
        order: list[str] = []
        while ready:
            _, sha = heapq.heappop(ready)
            order.append(sha)
            for p in dict.fromkeys(self.parents[sha]):
                waiting[p] -= 1
                if waiting[p] == 0:
                    heapq.heappush(ready, (-self.times[p].timestamp(), p))
        return order


def load_graph(session: Session, story: Story) -> CommitGraph:
    ids: dict[int, str] = {}
    times: dict[str, datetime] = {}
    for row in session.execute(
        select(StoryCommit.id, StoryCommit.sha, StoryCommit.committed_at).where(
            StoryCommit.story_id == story.id
        )
    ):
        ids[row.id] = row.sha
        times[row.sha] = row.committed_at
    parents: dict[str, list[str]] = {sha: [] for sha in times}
    for row in session.execute(
        select(StoryCommitParent.commit_id, StoryCommitParent.parent_id)
        .join(StoryCommit, StoryCommit.id == StoryCommitParent.commit_id)
        .where(StoryCommit.story_id == story.id)
        .order_by(StoryCommitParent.commit_id, StoryCommitParent.position)
    ):
        parents[ids[row.commit_id]].append(ids[row.parent_id])
    return CommitGraph(parents=parents, times=times)


def commits_by_sha(session: Session, story: Story, shas: Iterable[str]) -> dict[str, StoryCommit]:
    wanted = list(shas)
    rows = session.scalars(
        select(StoryCommit).where(StoryCommit.story_id == story.id, StoryCommit.sha.in_(wanted))
    )
    return {c.sha: c for c in rows}


def merge_base(session: Session, story: Story, a: str, b: str) -> StoryCommit | None:
    """The commit two lines last shared (None if they share no history)."""
    left, right = resolve(session, story, a), resolve(session, story, b)
    sha = load_graph(session, story).merge_base(left.sha, right.sha)
    return commits_by_sha(session, story, [sha])[sha] if sha else None


def history(
    session: Session,
    story: Story,
    ref: str | None = None,
    first_parent: bool = True,
    limit: int | None = None,
) -> list[StoryCommit]:
    """A branch's (or commit's) history, newest first."""
    head = resolve(session, story, ref or story.default_branch)
    shas = load_graph(session, story).log(head.sha, first_parent=first_parent)
    if limit is not None:
        shas = shas[:limit]
    commits = commits_by_sha(session, story, shas)
    return [commits[s] for s in shas]


# --- writing commits -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _snapshot(session: Session, story: Story, tree: StoryTree) -> StorySnapshot:
    sha = tree.sha
    found = session.scalar(
        select(StorySnapshot).where(StorySnapshot.story_id == story.id, StorySnapshot.sha == sha)
    )
    if found is None:
        found = StorySnapshot(story_id=story.id, sha=sha, tree=tree.canonical())
        session.add(found)
        session.flush()
    return found


def write_commit(
    session: Session,
    story: Story,
    tree: StoryTree,
    parents: list[StoryCommit],
    author: str,
    message: str,
    at: datetime | None = None,
) -> StoryCommit:
    """Store one commit (or find the identical one already stored); moves no branch."""
    from db.storyline.tree import commit_sha

    author = author.strip()
    if not author:
        raise StoryError("a commit needs an author")
    at = (at or _now()).astimezone(UTC)
    sha = commit_sha(tree.sha, [p.sha for p in parents], author, message, at)
    existing = session.scalar(
        select(StoryCommit).where(StoryCommit.story_id == story.id, StoryCommit.sha == sha)
    )
    if existing is not None:
        return existing
    commit = StoryCommit(
        story_id=story.id,
        sha=sha,
        snapshot=_snapshot(session, story, tree),
        author=author,
        message=message,
        committed_at=at,
        parent_links=[StoryCommitParent(position=i, parent=p) for i, p in enumerate(parents)],
    )
    session.add(commit)
    session.flush()
    return commit


def _move(
    session: Session,
    branch: StoryBranch,
    to: StoryCommit,
    kind: BranchMoveKind,
    author: str,
    message: str = "",
) -> None:
    previous = branch.head if branch.head_id is not None else None
    branch.head = to
    session.add(
        StoryBranchMove(
            branch=branch,
            kind=kind,
            from_commit=previous,
            to_commit=to,
            author=author,
            message=message,
        )
    )
    session.flush()


def create_story(
    session: Session,
    project: Project | str,
    slug: str,
    title: str,
    *,
    author: str,
    tree: StoryTree | None = None,
    message: str = "Start the story",
    branch: str = "main",
    description: str = "",
    at: datetime | None = None,
) -> Story:
    """A new story with its first commit on its default branch."""
    project = _project(session, project)
    if not re.match(r"^[a-z0-9][a-z0-9-]{0,99}$", slug):
        raise StoryError(f"story slug {slug!r} is not allowed: lower-case letters, digits and '-'")
    _check_branch_name(branch)
    if session.scalar(select(Story).where(Story.project_id == project.id, Story.slug == slug)):
        raise StoryError(f"project {project.slug} already has a story {slug!r}")
    story = Story(
        project=project, slug=slug, title=title, description=description, default_branch=branch
    )
    session.add(story)
    session.flush()
    if tree is None:
        from db.storyline.tree import StoryTree

        tree = StoryTree()
    first = write_commit(session, story, tree, [], author, message, at)
    head = StoryBranch(story=story, name=branch, head=first)
    session.add(head)
    session.flush()
    session.add(
        StoryBranchMove(
            branch=head, kind=BranchMoveKind.CREATE, to_commit=first, author=author, message=message
        )
    )
    session.flush()
    return story


def _check_expected(branch: StoryBranch, story: Story, expected: str) -> None:
    head = branch.head
    wanted = expected.strip().lower()
    if len(wanted) >= MIN_PREFIX and head.sha.startswith(wanted):
        return
    raise StaleHeadError(
        f"branch {branch.name} of {story.slug} has moved on: your edit is based on "
        f"{expected[:10]}, but {branch.name} is now at {head.short} "
        f"({head.message.splitlines()[0] if head.message else 'no message'!r} by {head.author}). "
        f"Nothing was committed. Check out {branch.name} again and redo the edit, or commit it "
        f"on a new branch started at {expected[:10]} and merge that."
    )


def commit(
    session: Session,
    story: Story,
    tree: StoryTree,
    *,
    branch: str | None = None,
    parent: str,
    author: str,
    message: str,
    at: datetime | None = None,
    allow_empty: bool = False,
    merge_of: str | None = None,
) -> StoryCommit:
    """Commit ``tree`` on ``branch`` if its head is still ``parent`` (the commit the edit was
    based on); otherwise raise StaleHeadError and write nothing.

    ``merge_of`` (a commit id) makes it the merge of that commit into the branch: the commit
    has both parents, as `merge` would have made it had it met no conflict.
    """
    if not parent or not parent.strip():
        raise StoryError(
            "say which commit the edit is based on (the branch head you checked out): "
            "the file's `parent:` line or --parent"
        )
    if not _HEX.match(parent.strip().lower()):
        raise StoryError(
            f"the parent must be the id of the commit the edit is based on, not {parent!r} "
            "(a branch name would always match, which defeats the check)"
        )
    name = branch or story.default_branch
    target = get_branch(session, story, name, lock=True)
    _check_expected(target, story, parent)
    if not message.strip():
        raise StoryError("a commit needs a message (-m)")
    if merge_of:
        theirs = resolve(session, story, merge_of)
        if load_graph(session, story).is_ancestor(theirs.sha, target.head.sha):
            raise StoryError(f"{name} already contains {theirs.short}: nothing to merge")
        new = write_commit(session, story, tree, [target.head, theirs], author, message, at)
        _move(session, target, new, BranchMoveKind.MERGE, author, message)
        return new
    if not allow_empty and tree.sha == target.head.snapshot.sha:
        raise StoryError(
            f"nothing to commit: the tree is the same as {name} at {target.head.short}"
        )
    new = write_commit(session, story, tree, [target.head], author, message, at)
    _move(session, target, new, BranchMoveKind.COMMIT, author, message)
    return new


def create_branch(
    session: Session, story: Story, name: str, start: str | None = None, *, author: str
) -> StoryBranch:
    """A new branch at any commit (default: the head of the default branch)."""
    _check_branch_name(name)
    if _find_branch(session, story, name) is not None:
        raise StoryError(f"story {story.slug} already has a branch {name!r}")
    at = resolve(session, story, start or story.default_branch)
    branch = StoryBranch(story=story, name=name, head=at)
    session.add(branch)
    session.flush()
    session.add(
        StoryBranchMove(
            branch=branch,
            kind=BranchMoveKind.CREATE,
            to_commit=at,
            author=author,
            message=f"branch from {start or story.default_branch}",
        )
    )
    session.flush()
    return branch


def delete_branch(session: Session, story: Story, name: str) -> StoryCommit:
    """Remove a branch (its commits stay, reachable by id). Returns where it pointed."""
    if name == story.default_branch:
        raise StoryError(f"{name} is the default branch of {story.slug}; it cannot be deleted")
    branch = get_branch(session, story, name, lock=True)
    head = branch.head
    session.delete(branch)
    session.flush()
    return head


def branch_moves(session: Session, story: Story, name: str) -> list[StoryBranchMove]:
    branch = get_branch(session, story, name)
    return list(
        session.scalars(
            select(StoryBranchMove)
            .where(StoryBranchMove.branch_id == branch.id)
            .order_by(StoryBranchMove.id.desc())
        )
    )


# --- diff and merge --------------------------------------------------------------------------


def diff(session: Session, story: Story, old: str, new: str) -> StoryDiff:
    from db.storyline.tree import diff_trees

    return diff_trees(tree_of(resolve(session, story, old)), tree_of(resolve(session, story, new)))


def commit_changes(commit: StoryCommit) -> StoryDiff:
    """What a commit changed relative to its first parent (everything, for a first commit)."""
    from db.storyline.tree import StoryTree, diff_trees

    before = tree_of(commit.parents[0]) if commit.parent_links else StoryTree()
    return diff_trees(before, tree_of(commit))


@dataclass
class MergeResult:
    kind: str  # "merge" | "fast-forward" | "up-to-date"
    branch: str
    head: StoryCommit
    previous: StoryCommit
    base: StoryCommit | None = None
    resolved: list[tuple[MergeConflict, str]] = field(default_factory=list)


@dataclass
class MergeDraft:
    """A merge that conflicts, with every conflict set to the side that has the element: what
    a checkout with conflict markers is written from."""

    branch: str
    ours: StoryCommit
    theirs: StoryCommit
    tree: StoryTree
    ours_tree: StoryTree
    theirs_tree: StoryTree
    conflicts: list[MergeConflict]


def merge(
    session: Session,
    story: Story,
    source: str,
    into: str | None = None,
    *,
    author: str,
    message: str | None = None,
    expected_head: str | None = None,
    at: datetime | None = None,
    fast_forward: bool = True,
    resolutions: dict[str, str] | None = None,
) -> MergeResult:
    """Merge ``source`` (a branch or commit) into branch ``into``.

    If ``into`` already contains it: nothing to do. If ``into`` is an ancestor of it and
    ``fast_forward``: the head moves, recorded as a fast-forward. Otherwise a three-way merge
    against the merge base makes a commit with both parents; any conflict ``resolutions``
    does not settle (slug -> ours | theirs) raises MergeConflictError before anything is
    written.
    """
    from db.storyline.merge import merge_trees

    name = into or story.default_branch
    target = get_branch(session, story, name, lock=True)
    if expected_head:
        _check_expected(target, story, expected_head)
    theirs = resolve(session, story, source)
    ours = target.head
    graph = load_graph(session, story)
    if graph.is_ancestor(theirs.sha, ours.sha):
        return MergeResult("up-to-date", name, ours, ours)
    if fast_forward and graph.is_ancestor(ours.sha, theirs.sha):
        _move(
            session,
            target,
            theirs,
            BranchMoveKind.FAST_FORWARD,
            author,
            message or f"fast-forward {name} to {source}",
        )
        return MergeResult("fast-forward", name, theirs, ours, base=ours)
    base_sha = graph.merge_base(ours.sha, theirs.sha)
    base = commits_by_sha(session, story, [base_sha])[base_sha] if base_sha else None
    try:
        outcome = merge_trees(
            tree_of(base) if base else None,
            tree_of(ours),
            tree_of(theirs),
            ours_name=name,
            theirs_name=source,
            resolutions=resolutions,
        )
    except ValueError as exc:
        raise StoryError(str(exc)) from None
    if not outcome.clean:
        listing = "\n".join(f"  {c}" for c in outcome.conflicts)
        raise MergeConflictError(
            f"merging {source} into {name} of {story.slug} conflicts "
            f"({len(outcome.conflicts)}); nothing was written, both branches are as they were:\n"
            f"{listing}",
            outcome.conflicts,
        )
    assert outcome.tree is not None
    text = message or f"Merge {source} into {name}"
    merged = write_commit(session, story, outcome.tree, [ours, theirs], author, text, at)
    _move(session, target, merged, BranchMoveKind.MERGE, author, text)
    return MergeResult("merge", name, merged, ours, base=base, resolved=outcome.resolved)


def merge_draft(session: Session, story: Story, source: str, into: str | None = None) -> MergeDraft:
    """The conflicting merge of ``source`` into ``into``, to write out with conflict markers;
    reads only."""
    from db.storyline.merge import merge_trees, present_side

    name = into or story.default_branch
    ours = get_branch(session, story, name).head
    theirs = resolve(session, story, source)
    graph = load_graph(session, story)
    base_sha = graph.merge_base(ours.sha, theirs.sha)
    base_tree = tree_of(commits_by_sha(session, story, [base_sha])[base_sha]) if base_sha else None
    ours_tree, theirs_tree = tree_of(ours), tree_of(theirs)
    first = merge_trees(base_tree, ours_tree, theirs_tree, ours_name=name, theirs_name=source)
    sides = {
        ("chapters" if c.kind == "order" and c.slug == "chapters" else c.slug): present_side(
            c, ours_tree, theirs_tree
        )
        for c in first.conflicts
    }
    drafted = merge_trees(
        base_tree, ours_tree, theirs_tree, ours_name=name, theirs_name=source, resolutions=sides
    )
    if drafted.tree is None:  # cannot happen: every conflict has a side
        raise StoryError(f"merging {source} into {name}: cannot draft the conflicts")
    return MergeDraft(name, ours, theirs, drafted.tree, ours_tree, theirs_tree, first.conflicts)


# --- episodes and the story version they adapt -----------------------------------------------


def parse_story_ref(spec: str) -> tuple[str | None, str]:
    """``story@ref`` -> (story, ref); a bare commit id -> (None, id)."""
    from db.storyline.spec import split_story_ref

    story, ref = split_story_ref(spec.strip())
    if ref is None:
        raise StoryError(f"{spec!r}: write story@branch, story@commit or a commit id")
    return story, ref


def find_commit(session: Session, project: Project, spec: str) -> tuple[Story, StoryCommit, bool]:
    """Resolve ``story@ref`` or a bare commit id within a project; says if ref was a branch."""
    slug, ref = parse_story_ref(spec)
    if slug is not None:
        story = get_story(session, project, slug)
        return story, resolve(session, story, ref), _find_branch(session, story, ref) is not None
    found = list(
        session.scalars(
            select(StoryCommit)
            .join(Story)
            .where(Story.project_id == project.id, StoryCommit.sha.startswith(ref.lower()))
            .limit(5)
        )
    )
    if len(found) != 1:
        what = "no commit" if not found else "several commits"
        raise StoryError(f"{what} of project {project.slug} start with {ref!r}")
    return found[0].story, found[0], False


def adapt_episode(
    session: Session,
    episode: Episode,
    spec: str,
    scenes: list[str] | None = None,
    branch: str | None = None,
) -> StoryCommit:
    """Record that ``episode`` adapts the story version ``spec`` (``story@branch`` pins the
    branch's head now and follows that branch), limited to ``scenes`` (scene or chapter slugs)."""
    story, commit, ref_is_branch = find_commit(session, episode.project, spec)
    follow = branch or (parse_story_ref(spec)[1] if ref_is_branch else "")
    if follow:
        get_branch(session, story, follow)
    tree = tree_of(commit)
    missing = [s for s in scenes or [] if tree.find(s) is None]
    if missing:
        raise StoryError(
            f"{story.slug} at {commit.short} has no scene or chapter {', '.join(missing)}"
        )
    episode.story_commit = commit
    link = session.get(StoryAdaptation, episode.id)
    if link is None:
        link = StoryAdaptation(episode_id=episode.id)
        session.add(link)
    if link.branch != follow:
        link.branch = follow
    if link.scenes != list(scenes or []):
        link.scenes = list(scenes or [])
    session.flush()
    return commit


@dataclass
class StoryDrift:
    """Where an episode's story version stands against the head of the branch it follows."""

    story: str
    branch: str
    adapted: StoryCommit
    head: StoryCommit | None
    scenes: list[str] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)

    @property
    def moved_on(self) -> bool:
        return self.head is not None and self.head.sha != self.adapted.sha and bool(self.changed)

    def changed_scenes(self) -> list[str]:
        out = []
        for change in self.changed:
            if change.change != "changed":
                out.append(f"{change.slug} ({change.change})")
                continue
            fields = [
                f"moved to {change.chapter}" if f.field == "chapter" else f.field
                for f in change.fields
            ]
            out.append(f"{change.slug} ({', '.join(fields)})")
        return out

    def describe(self) -> str:
        where = f"{self.story}@{self.branch}"
        if self.head is None:
            return f"story: adapts {self.story} {self.adapted.short}; branch {self.branch} is gone"
        if self.head.sha == self.adapted.sha:
            return f"story: adapts {where} {self.adapted.short} (up to date)"
        if not self.changed:
            return (
                f"story: adapts {where} {self.adapted.short}; {self.branch} is now at "
                f"{self.head.short}, the adapted scenes are unchanged"
            )
        return (
            f"story moved on: {where} is at {self.head.short}, this episode adapts "
            f"{self.adapted.short}; changed: {', '.join(self.changed_scenes())}"
        )


def adaptation_status(session: Session, episode: Episode) -> StoryDrift | None:
    adapted = episode.story_commit
    if adapted is None:
        return None
    story = adapted.story
    link = session.get(StoryAdaptation, episode.id)
    follow = (link.branch if link else "") or story.default_branch
    scope = list(link.scenes) if link else []
    target = _find_branch(session, story, follow)
    drift = StoryDrift(story.slug, follow, adapted, target.head if target else None, scope)
    if target is None or target.head.sha == adapted.sha:
        return drift
    from db.storyline.tree import diff_trees

    old, new = tree_of(adapted), tree_of(target.head)
    changes = diff_trees(old, new).scenes()
    if scope:
        wanted: set[str] = set()
        for tree in (old, new):
            for slug in scope:
                element = tree.chapter_index().get(slug)
                wanted |= {s.slug for s in element.scenes} if element else {slug}
        changes = {slug: c for slug, c in changes.items() if slug in wanted}
    drift.changed = list(changes.values())
    return drift


def project_story_status(session: Session, project: Project) -> dict[int, StoryDrift]:
    """Episode id -> drift, for the project's episodes that record a story version."""
    episodes = session.scalars(
        select(Episode).where(
            Episode.project_id == project.id, Episode.story_commit_id.is_not(None)
        )
    )
    out: dict[int, StoryDrift] = {}
    for episode in episodes:
        drift = adaptation_status(session, episode)
        if drift is not None:
            out[episode.id] = drift
    return out


__all__ = [
    "CommitGraph",
    "MergeConflictError",
    "MergeDraft",
    "MergeResult",
    "StaleHeadError",
    "StoryDrift",
    "StoryError",
    "adapt_episode",
    "adaptation_status",
    "branch_moves",
    "checkout",
    "commit",
    "commit_changes",
    "commits_by_sha",
    "create_branch",
    "create_story",
    "delete_branch",
    "diff",
    "find_commit",
    "find_story",
    "get_branch",
    "get_story",
    "history",
    "list_branches",
    "list_stories",
    "load_graph",
    "merge",
    "merge_base",
    "merge_draft",
    "parse_story_ref",
    "project_story_status",
    "resolve",
    "tree_of",
    "write_commit",
]
