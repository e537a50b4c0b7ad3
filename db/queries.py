"""Small read queries the CLI, API and flows share."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.looks import episode_looks
from db.models import (
    Character,
    CharacterReference,
    Cut,
    Episode,
    Job,
    JobKind,
    PhaseGate,
    Project,
    Scene,
)
from db.story import StoryDrift, project_story_status


@dataclass
class EpisodeStatus:
    number: int
    title: str
    scenes: int
    cuts: int
    frames: int
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)
    # The story version adapted, against the head of the branch it follows.
    story: StoryDrift | None = None
    # Each cast character's looks: "aki: rendered in time-skip (2 cuts); not rendered yet,
    # planned: base (1 cut)" (db/looks.py: episode_looks); empty when no character has looks.
    looks: list[str] = field(default_factory=list)


@dataclass
class ProjectStatus:
    slug: str
    name: str
    story_bible_version: int | None
    characters: int
    references: int
    episodes: list[EpisodeStatus]
    jobs_by_status: dict[str, int]
    # Reproductions re-render old jobs to check them: not the episodes' work, counted apart
    # (passed: identical output, failed: output differs).
    reproductions_by_status: dict[str, int] = field(default_factory=dict)


def get_project(session: Session, slug: str) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        known = ", ".join(session.scalars(select(Project.slug).order_by(Project.slug))) or "none"
        raise LookupError(f"no project {slug!r} (projects: {known})")
    return project


def get_episode(session: Session, project_slug: str, number: int) -> Episode:
    """A project's episode by number; LookupError naming what is missing."""
    project = get_project(session, project_slug)
    episode = session.scalar(
        select(Episode).where(Episode.project_id == project.id, Episode.number == number)
    )
    if episode is None:
        known = ", ".join(str(e.number) for e in sorted(project.episodes, key=lambda e: e.number))
        raise LookupError(
            f"project {project_slug!r} has no episode {number} (episodes: {known or 'none'})"
        )
    return episode


def project_status(session: Session, project: Project) -> ProjectStatus:
    characters = session.scalar(
        select(func.count()).select_from(Character).where(Character.project_id == project.id)
    )
    references = session.scalar(
        select(func.count())
        .select_from(CharacterReference)
        .join(Character)
        .where(Character.project_id == project.id)
    )
    shape = {
        row.id: row
        for row in session.execute(
            select(
                Episode.id,
                Episode.number,
                Episode.title,
                func.count(func.distinct(Scene.id)).label("scenes"),
                func.count(Cut.id).label("cuts"),
                func.coalesce(func.sum(Cut.frames), 0).label("frames"),
            )
            .outerjoin(Scene, Scene.episode_id == Episode.id)
            .outerjoin(Cut, Cut.scene_id == Scene.id)
            .where(Episode.project_id == project.id)
            .group_by(Episode.id)
            .order_by(Episode.number)
        )
    }
    jobs_per_episode: dict[int, dict[str, int]] = {}
    for episode_id, status, count in session.execute(
        select(Scene.episode_id, Job.status, func.count())
        .join(Cut, Job.cut_id == Cut.id)
        .join(Scene, Cut.scene_id == Scene.id)
        .where(Job.project_id == project.id, Job.kind != JobKind.REPRODUCTION)
        .group_by(Scene.episode_id, Job.status)
    ):
        jobs_per_episode.setdefault(episode_id, {})[status.value] = count
    gates: dict[int, list[str]] = {}
    latest = (
        select(PhaseGate)
        .where(PhaseGate.project_id == project.id, PhaseGate.episode_id.is_not(None))
        .distinct(PhaseGate.episode_id, PhaseGate.phase)
        .order_by(
            PhaseGate.episode_id, PhaseGate.phase, PhaseGate.decided_at.desc(), PhaseGate.id.desc()
        )
    )
    for gate in sorted(session.scalars(latest), key=lambda g: (g.decided_at, g.id)):
        gates.setdefault(gate.episode_id, []).append(
            f"{gate.phase.value}: {gate.decision.value} ({gate.pass_rate:.0%} of "
            f"{gate.items_total}, needs {gate.required_rate:.0%})"
        )
    all_jobs: dict[str, int] = {}
    reproductions: dict[str, int] = {}
    for kind, status, count in session.execute(
        select(Job.kind, Job.status, func.count())
        .where(Job.project_id == project.id)
        .group_by(Job.kind, Job.status)
    ):
        counted = reproductions if kind is JobKind.REPRODUCTION else all_jobs
        counted[status.value] = counted.get(status.value, 0) + count
    story_drift = project_story_status(session, project)
    bible = project.story_bible
    return ProjectStatus(
        slug=project.slug,
        name=project.name,
        story_bible_version=bible.version if bible else None,
        characters=characters or 0,
        references=references or 0,
        episodes=[
            EpisodeStatus(
                number=row.number,
                title=row.title,
                scenes=row.scenes,
                cuts=row.cuts,
                frames=int(row.frames),
                jobs_by_status=jobs_per_episode.get(episode_id, {}),
                gates=gates.get(episode_id, []),
                story=story_drift.get(episode_id),
                looks=episode_looks(session, session.get(Episode, episode_id)),
            )
            for episode_id, row in shape.items()
        ],
        jobs_by_status=all_jobs,
        reproductions_by_status=reproductions,
    )


def all_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))


@dataclass
class PendingEpisode:
    project: str
    episode: int
    phase: str
    cuts_pending: int


def pending_episodes(session: Session) -> list[PendingEpisode]:
    """Episodes with cuts still to render: not every cut has a passed keyframe, or (once the
    generation gate has opened) a passed animation. Cuts flagged for review wait for a person
    and do not count as pending."""
    from db.models import GateDecision, JobStatus, Phase

    settled = {JobStatus.PASSED, JobStatus.NEEDS_REVIEW}
    out: list[PendingEpisode] = []
    for project in all_projects(session):
        for episode in project.episodes:
            cut_ids = [c.id for s in episode.scenes for c in s.cuts]
            if not cut_ids:
                continue
            done: dict[Phase, set[int]] = {Phase.GENERATION: set(), Phase.ANIMATION: set()}
            for cut_id, phase in session.execute(
                select(Job.cut_id, Job.phase).where(
                    Job.cut_id.in_(cut_ids), Job.status.in_(settled), Job.parent_job_id.is_(None)
                )
            ):
                done.setdefault(phase, set()).add(cut_id)
            generation_open = (
                session.scalar(
                    select(PhaseGate.decision)
                    .where(PhaseGate.episode_id == episode.id, PhaseGate.phase == Phase.GENERATION)
                    .order_by(PhaseGate.decided_at.desc(), PhaseGate.id.desc())
                    .limit(1)
                )
                == GateDecision.OPEN
            )
            phase = Phase.ANIMATION if generation_open else Phase.GENERATION
            missing = len(set(cut_ids) - done[phase])
            if missing:
                out.append(PendingEpisode(project.slug, episode.number, phase.value, missing))
    return out
