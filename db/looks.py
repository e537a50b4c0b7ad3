"""Which look of a character is in force for an episode, and the story points looks start from.

A look takes effect from an episode (``from_episode``: that episode and every later one), or
from a point of the story the episodes adapt (``episodes.story_commit_id`` and
``story_adaptations.scenes``):

- a story commit: in force for every episode that adapts a version of the story holding that
  commit (the commit itself, or one descending from it);
- a story scene or chapter: in force for every episode that adapts that scene, or a scene after
  it in the story's order, in the version of the story the episode adapts.

An episode that records no story version is before every story point. When several looks are in
force for one episode, the one that took effect last wins: the one whose first episode (its
``from_episode``, or the first episode its story point covers) is the latest. An import refuses
two looks of a character that take effect from the same episode.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import story as vc
from db.models import (
    Character,
    CharacterLook,
    Cut,
    Episode,
    Job,
    JobKind,
    Project,
    Story,
    StoryAdaptation,
    StoryCommit,
    StorySnapshot,
)
from db.production_file import BASE_LOOK
from db.storyline.tree import StoryTree


@dataclass(frozen=True)
class StoryPlace:
    """Where an episode stands in the story it adapts."""

    story_id: int
    # The adapted commit and every commit it descends from (shas).
    versions: frozenset[str]
    # Scene or chapter slug -> position of its (first) scene in the adapted version's order.
    positions: dict[str, int]
    # Position of the last scene the episode adapts (-1: the version has no scenes).
    last: int

    def reaches(self, look: CharacterLook) -> bool:
        """Whether the episode adapts the look's story point or something after it."""
        commit = look.from_story_commit
        if commit is not None:
            return commit.story_id == self.story_id and commit.sha in self.versions
        if look.from_story_scene is not None:
            start = self.positions.get(look.from_story_scene)
            return start is not None and self.last >= start
        return False


def _positions(tree: StoryTree) -> dict[str, int]:
    """Every scene in story order; a chapter stands where its first scene does (an empty
    chapter where the next scene would)."""
    out: dict[str, int] = {}
    position = 0
    for chapter in tree.chapters:
        out[chapter.slug] = position
        for scene in chapter.scenes:
            out[scene.slug] = position
            position += 1
    return out


def _last_adapted(tree: StoryTree, scopes: list[str], positions: dict[str, int]) -> int:
    """The position of the last scene an episode adapts (``scopes`` empty: the whole story)."""
    if not scopes:
        return len(tree.scene_index()) - 1
    chapters = tree.chapter_index()
    last = -1
    for slug in scopes:
        chapter = chapters.get(slug)
        scenes = [s.slug for s in chapter.scenes] if chapter else [slug]
        last = max([last, *(positions[s] for s in scenes if s in positions)])
    return last


def story_places(session: Session, project_id: int) -> dict[int, StoryPlace]:
    """Episode id -> where it stands in the story it adapts, for the episodes recording one."""
    rows = session.execute(
        select(Episode.id, StoryCommit, StoryAdaptation.scenes)
        .join(StoryCommit, Episode.story_commit_id == StoryCommit.id)
        .outerjoin(StoryAdaptation, StoryAdaptation.episode_id == Episode.id)
        .where(Episode.project_id == project_id)
    ).all()
    graphs: dict[int, vc.CommitGraph] = {}
    trees: dict[int, StoryTree] = {}
    places: dict[int, StoryPlace] = {}
    for episode_id, commit, scopes in rows:
        if commit.story_id not in graphs:
            graphs[commit.story_id] = vc.load_graph(session, commit.story)
        if commit.id not in trees:
            trees[commit.id] = vc.tree_of(commit)
        tree = trees[commit.id]
        positions = _positions(tree)
        places[episode_id] = StoryPlace(
            story_id=commit.story_id,
            versions=frozenset(graphs[commit.story_id].ancestors(commit.sha)),
            positions=positions,
            last=_last_adapted(tree, list(scopes or []), positions),
        )
    return places


class LookChooser:
    """The look in force for each episode of one project: built once for a cut's brief, a
    status or a review page, it reads the episodes' story versions once."""

    def __init__(self, session: Session, project_id: int) -> None:
        rows = session.execute(
            select(Episode.id, Episode.number).where(Episode.project_id == project_id)
        )
        self.numbers: dict[int, int] = {episode_id: number for episode_id, number in rows}
        self._session, self._project_id = session, project_id
        self._places: dict[int, StoryPlace] | None = None
        self._first: dict[int, int | None] = {}

    @property
    def places(self) -> dict[int, StoryPlace]:
        # Read on first need: most casts have no look starting from a story point.
        if self._places is None:
            self._places = story_places(self._session, self._project_id)
        return self._places

    def covers(self, look: CharacterLook, episode_id: int) -> bool:
        if look.retired:
            return False
        if look.from_episode is not None:
            return look.from_episode <= self.numbers.get(episode_id, 0)
        place = self.places.get(episode_id)
        return place is not None and place.reaches(look)

    def first_episode(self, look: CharacterLook) -> int | None:
        """The number of the first episode the look is in force for (None: none yet)."""
        if look.from_episode is not None:
            return look.from_episode
        if look.id not in self._first:
            numbers = [n for e, n in self.numbers.items() if self.covers(look, e)]
            self._first[look.id] = min(numbers, default=None)
        return self._first[look.id]

    def look_for(
        self, character: Character, episode_id: int, name: str | None = None
    ) -> CharacterLook | None:
        """``name`` when a cut names one, else the look in force; None is the base look."""
        if name:
            return character.look_named(name)
        in_force = [look for look in character.looks if self.covers(look, episode_id)]
        return max(
            in_force, key=lambda look: (self.first_episode(look) or 0, look.id), default=None
        )


# --- the look each cast character had -------------------------------------------------------


@dataclass(frozen=True)
class CastLook:
    """A character of a cut and its look: the one the cut's latest render used (``rendered``),
    or, where nothing was rendered yet, the one planned (the cut's choice or the look in
    force)."""

    character: Character
    look: CharacterLook | None  # None: the base look
    rendered: bool

    @property
    def name(self) -> str:
        return self.look.name if self.look else BASE_LOOK


def cut_cast_looks(cut: Cut, latest: Job | None, chooser: LookChooser) -> list[CastLook]:
    """``latest``: the cut's latest render (a job that ran records its looks; none listed is
    the base look). The cast is the cut's, else its scene's."""
    rendered = latest is not None and latest.started_at is not None
    overrides = {row.character_id: row.look for row in cut.casting}
    characters = [row.character for row in cut.casting] or [
        row.character for row in cut.scene.casting
    ]
    seen: dict[int, CastLook] = {}
    for character in characters:
        if character.id in seen:
            continue
        if rendered:
            assert latest is not None
            look = next((k for k in latest.looks if k.character_id == character.id), None)
        else:
            look = chooser.look_for(character, cut.scene.episode_id, overrides.get(character.id))
        seen[character.id] = CastLook(character, look, rendered)
    return list(seen.values())


def latest_renders(session: Session, cut_ids: list[int]) -> dict[int, Job]:
    """Cut id -> its latest keyframe or animation job that ran (reproductions aside)."""
    jobs = session.scalars(
        select(Job)
        .where(
            Job.cut_id.in_(cut_ids),
            Job.kind.in_([JobKind.KEYFRAME, JobKind.ANIMATION]),
            Job.parent_job_id.is_(None),
            Job.started_at.is_not(None),
        )
        .order_by(Job.id)
    )
    return {job.cut_id: job for job in jobs if job.cut_id is not None}


def _counted(names: Counter[str]) -> str:
    return ", ".join(f"{name} ({n} cut{'s' if n > 1 else ''})" for name, n in sorted(names.items()))


def episode_looks(session: Session, episode: Episode) -> list[str]:
    """One line per character cast in the episode: the looks its cuts were rendered in, and the
    looks planned for the cuts not rendered yet. Empty when no character of the project has
    looks."""
    if not session.scalar(
        select(CharacterLook.id)
        .join(Character)
        .where(Character.project_id == episode.project_id)
        .limit(1)
    ):
        return []
    cuts = [cut for scene in episode.scenes for cut in scene.cuts]
    latest = latest_renders(session, [cut.id for cut in cuts])
    chooser = LookChooser(session, episode.project_id)
    rendered: dict[str, Counter[str]] = {}
    planned: dict[str, Counter[str]] = {}
    for cut in cuts:
        for cast in cut_cast_looks(cut, latest.get(cut.id), chooser):
            counts = rendered if cast.rendered else planned
            counts.setdefault(cast.character.slug, Counter())[cast.name] += 1
    lines = []
    for slug in sorted(set(rendered) | set(planned)):
        parts = []
        if slug in rendered:
            parts.append(f"rendered in {_counted(rendered[slug])}")
        if slug in planned:
            parts.append(f"not rendered yet, planned: {_counted(planned[slug])}")
        lines.append(f"{slug}: {'; '.join(parts)}")
    return lines


# --- the story point a production file names ------------------------------------------------


class StoryPointError(ValueError):
    """A look's ``from_story`` names nothing the project's stories have."""


_COMMIT_ID = re.compile(r"^[0-9a-f]{7,64}$")


def resolve_story_point(
    session: Session, project: Project, text: str
) -> tuple[StoryCommit | None, str | None]:
    """``from_story`` -> (commit, None) or (None, scene or chapter slug).

    ``story@commit`` or a bare commit id (7+ hex digits) names a commit; a branch is refused,
    since it moves. Anything else is a scene or chapter slug some version of a story has.
    """
    stories = vc.list_stories(session, project)
    if not stories:
        raise StoryPointError(
            f"project {project.slug} has no stories: from_story names a story commit "
            "(story@commit) or a story scene or chapter"
        )
    if "@" in text or _COMMIT_ID.match(text):
        try:
            story, commit, is_branch = vc.find_commit(session, project, text)
        except vc.StoryError as exc:
            if "@" in text:
                raise StoryPointError(str(exc)) from None
        else:
            if is_branch:
                raise StoryPointError(
                    f"{text} is a branch, which moves; name a commit (its head now is "
                    f"{story.slug}@{commit.short})"
                )
            if "@" not in text and _has_slug(session, stories, text):
                raise StoryPointError(
                    f"{text!r} is both a commit id and a scene or chapter; write "
                    f"{story.slug}@{text} for the commit"
                )
            return commit, None
    if _has_slug(session, stories, text):
        return None, text
    raise StoryPointError(
        f"no story scene, chapter or commit {text!r} in project {project.slug} "
        f"(stories: {', '.join(s.slug for s in stories)})"
    )


def _has_slug(session: Session, stories: list[Story], slug: str) -> bool:
    """Whether any version of the stories has a scene or chapter ``slug``: the branch heads
    first, then (rarely needed) every stored version."""
    for story in stories:
        for branch in vc.list_branches(session, story):
            if vc.tree_of(branch.head).find(slug) is not None:
                return True
    trees = session.scalars(
        select(StorySnapshot.tree).where(StorySnapshot.story_id.in_([s.id for s in stories]))
    )
    return any(StoryTree.model_validate(tree).find(slug) is not None for tree in trees)


def story_point_text(look: CharacterLook) -> str | None:
    """How a production file writes the look's story point (what ``resolve_story_point``
    reads back to the same rows)."""
    commit = look.from_story_commit
    if commit is not None:
        return f"{commit.story.slug}@{commit.sha}"
    return look.from_story_scene


__all__ = [
    "CastLook",
    "LookChooser",
    "StoryPlace",
    "StoryPointError",
    "cut_cast_looks",
    "episode_looks",
    "latest_renders",
    "resolve_story_point",
    "story_places",
    "story_point_text",
]
