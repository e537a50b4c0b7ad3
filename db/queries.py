"""Small read queries the CLI, API and flows share."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import (
    Character,
    CharacterReference,
    Cut,
    Episode,
    Job,
    PhaseGate,
    Project,
    Scene,
)


@dataclass
class EpisodeStatus:
    number: int
    title: str
    scenes: int
    cuts: int
    frames: int
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)


@dataclass
class ProjectStatus:
    slug: str
    name: str
    story_bible_version: int | None
    characters: int
    references: int
    episodes: list[EpisodeStatus]
    jobs_by_status: dict[str, int]


def get_project(session: Session, slug: str) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        known = ", ".join(session.scalars(select(Project.slug).order_by(Project.slug))) or "none"
        raise LookupError(f"no project {slug!r} (projects: {known})")
    return project


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
        .where(Job.project_id == project.id)
        .group_by(Scene.episode_id, Job.status)
    ):
        jobs_per_episode.setdefault(episode_id, {})[status.value] = count
    gates: dict[int, list[str]] = {}
    for gate in session.scalars(
        select(PhaseGate)
        .where(PhaseGate.project_id == project.id, PhaseGate.episode_id.is_not(None))
        .order_by(PhaseGate.decided_at)
    ):
        gates.setdefault(gate.episode_id, []).append(
            f"{gate.phase.value}: {gate.decision.value} ({gate.pass_rate:.0%} of "
            f"{gate.items_total}, needs {gate.required_rate:.0%})"
        )
    all_jobs = dict(
        (status.value, count)
        for status, count in session.execute(
            select(Job.status, func.count())
            .where(Job.project_id == project.id)
            .group_by(Job.status)
        )
    )
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
            )
            for episode_id, row in shape.items()
        ],
        jobs_by_status=all_jobs,
    )


def all_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))
