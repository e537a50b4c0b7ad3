"""Stories in production files: import writes missing commits and moves branches forward,
export writes every commit and branch, so an import elsewhere recreates the same ids and heads.

Import never rewrites or drops history: commits already stored are skipped (same id, same
content), a branch the database has taken further than the file is kept where it is, and a
branch that went a different way in the file and in the database is an error (nothing stored).
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import story as vc
from db.models import (
    BranchMoveKind,
    Episode,
    Project,
    Story,
    StoryAdaptation,
    StoryBranch,
    StoryBranchMove,
    StoryCommit,
)
from db.production_file import ProductionFile, ProductionFileError
from db.storyline.spec import ResolvedStory, resolve_story, tree_changes
from db.storyline.tree import format_commit_time

IMPORT_AUTHOR = "import"


class _Report:
    """The bits of production_io.ImportReport this module writes to (kept duck-typed so the
    two modules do not import each other)."""

    created: Any
    updated: Any
    kept_absent: list[str]


def _fail(path: str, message: str) -> NoReturn:
    raise ProductionFileError("production file", [(path, message)])


def import_stories(
    session: Session, project: Project, production: ProductionFile, report: _Report
) -> dict[str, Story]:
    stories = {s.slug: s for s in vc.list_stories(session, project)}
    for index, spec in enumerate(production.stories):
        where = f"stories[{index}]"
        resolved = resolve_story(spec, where)
        if resolved.problems:  # parse_production checked already; a hand-built file may not be
            raise ProductionFileError("production file", resolved.problems)
        story = stories.get(spec.slug)
        if story is None:
            story = Story(project=project, slug=spec.slug, title=spec.title)
            session.add(story)
            stories[spec.slug] = story
            report.created["story"] += 1
        elif (story.title, story.description, story.default_branch) != (
            spec.title,
            spec.description,
            spec.default_branch,
        ):
            report.updated["story"] += 1
        story.title, story.description = spec.title, spec.description
        story.default_branch = spec.default_branch
        session.flush()
        _import_commits(session, story, resolved, report)
        _import_branches(session, story, resolved, where, report)
    wanted = {s.slug for s in production.stories}
    for slug in sorted(set(stories) - wanted):
        # A story is the writers' own history: an import never deletes one, even with --prune.
        report.kept_absent.append(f"story {slug} (an import never deletes stories)")
    return stories


def _import_commits(
    session: Session, story: Story, resolved: ResolvedStory, report: _Report
) -> None:
    stored = vc.commits_by_sha(session, story, [c.sha for c in resolved.commits])
    for item in resolved.commits:
        if item.sha in stored:
            continue
        commit = vc.write_commit(
            session,
            story,
            item.tree,
            [stored[p] for p in item.parents],
            item.spec.author,
            item.spec.message,
            item.spec.committed_at,
        )
        if commit.sha != item.sha:  # the hash rules changed under us: refuse, loudly
            raise AssertionError(f"commit {item.sha} was stored as {commit.sha}")
        stored[item.sha] = commit
        report.created["story commit"] += 1


def _import_branches(
    session: Session, story: Story, resolved: ResolvedStory, where: str, report: _Report
) -> None:
    graph = vc.load_graph(session, story)
    stored = vc.commits_by_sha(session, story, resolved.heads.values())
    existing = {b.name: b for b in vc.list_branches(session, story)}
    for index, branch_spec in enumerate(resolved.spec.branches):
        head = stored[resolved.heads[branch_spec.name]]
        branch = existing.get(branch_spec.name)
        if branch is None:
            branch = StoryBranch(story=story, name=branch_spec.name, head=head)
            session.add(branch)
            session.add(
                StoryBranchMove(
                    branch=branch,
                    kind=BranchMoveKind.IMPORT,
                    to_commit=head,
                    author=IMPORT_AUTHOR,
                    message="created by import",
                )
            )
            report.created["story branch"] += 1
            continue
        current = branch.head
        if current.sha == head.sha or graph.is_ancestor(head.sha, current.sha):
            continue  # the database is as far or further along: keep it
        if not graph.is_ancestor(current.sha, head.sha):
            _fail(
                f"{where}.branches[{index}].head",
                f"branch {branch.name} of story {story.slug} is at {current.short} in the "
                f"database, which the file's head {head.short} does not descend from: the two "
                "went different ways. Export the database's story, or merge the lines with "
                "`anime story merge`, then import again",
            )
        session.add(
            StoryBranchMove(
                branch=branch,
                kind=BranchMoveKind.IMPORT,
                from_commit=current,
                to_commit=head,
                author=IMPORT_AUTHOR,
                message="moved forward by import",
            )
        )
        branch.head = head
        report.updated["story branch"] += 1
    for name in sorted(set(existing) - set(resolved.heads)):
        report.kept_absent.append(f"story {story.slug} branch {name} (never deleted by import)")
    session.flush()


def link_episodes(
    session: Session,
    project: Project,
    production: ProductionFile,
    report: _Report,
    existed: set[int] | None = None,
) -> None:
    """Set (or clear) each episode's story version to match the file. ``existed``: numbers of
    the episodes there before this import (only their link changes count as updates)."""
    episodes = {
        e.number: e
        for e in session.scalars(select(Episode).where(Episode.project_id == project.id))
    }
    for index, spec in enumerate(production.episodes):
        episode = episodes.get(spec.number)
        if episode is None:
            continue
        link = session.get(StoryAdaptation, episode.id)
        before = (
            episode.story_commit_id,
            link.branch if link else "",
            list(link.scenes) if link else [],
        )
        if spec.story_commit is None:
            if episode.story_commit_id is not None or link is not None:
                episode.story_commit = None
                if link is not None:
                    session.delete(link)
                report.updated["episode"] += 1
            continue
        where = f"episodes[{index}].story_commit"
        try:
            story, commit, is_branch = vc.find_commit(session, project, spec.story_commit)
        except vc.StoryError as exc:
            _fail(where, str(exc))
        current = episode.story_commit
        follow = spec.story_branch or (spec.story_commit.split("@", 1)[1] if is_branch else "")
        if is_branch and current is not None and current.story_id == story.id:
            # "story@branch" pins the head once; a re-import must not silently re-pin a newer
            # head, or `anime status` could never say the story moved on.
            commit = current
        try:
            vc.adapt_episode(
                session, episode, f"{story.slug}@{commit.sha}", spec.story_scenes, follow or None
            )
        except vc.StoryError as exc:
            _fail(where, str(exc))
        link = session.get(StoryAdaptation, episode.id)
        after = (episode.story_commit_id, link.branch, list(link.scenes))
        if after != before and (existed is None or spec.number in existed):
            report.updated["episode"] += 1
    session.flush()


def export_stories(session: Session, project: Project) -> list[dict[str, Any]]:
    out = []
    for story in vc.list_stories(session, project):
        graph = vc.load_graph(session, story)
        order = graph.topological()
        commits = vc.commits_by_sha(session, story, order)
        entries = []
        for sha in order:
            commit = commits[sha]
            tree_now = vc.tree_of(commit)
            changes = (
                tree_changes(vc.tree_of(commit.parents[0]), tree_now)
                if commit.parent_links
                else None
            )
            tree = (
                {"tree_changes": changes} if changes is not None else {"tree": tree_now.canonical()}
            )
            entries.append(
                {
                    "id": sha,
                    "parents": [p.sha for p in commit.parents],
                    "author": commit.author,
                    "message": commit.message,
                    "committed_at": format_commit_time(commit.committed_at),
                    **tree,
                }
            )
        out.append(
            {
                "slug": story.slug,
                "title": story.title,
                "description": story.description,
                "default_branch": story.default_branch,
                "commits": entries,
                "branches": [
                    {"name": b.name, "head": b.head.sha} for b in vc.list_branches(session, story)
                ],
            }
        )
    return out


def episode_story_fields(session: Session, episode: Episode) -> dict[str, Any]:
    commit: StoryCommit | None = episode.story_commit
    if commit is None:
        return {}
    link = session.get(StoryAdaptation, episode.id)
    return {
        "story_commit": f"{commit.story.slug}@{commit.sha}",
        "story_branch": (link.branch if link else "") or None,
        "story_scenes": list(link.scenes) if link else [],
    }


__all__ = ["episode_story_fields", "export_stories", "import_stories", "link_episodes"]
