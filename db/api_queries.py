"""What the domain API and the notifications read and write: small functions on a session.

Each returns plain dataclasses (no ORM rows escape the session) and raises LookupError for an
unknown id, ValueError for a request that conflicts with what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from db.models import (
    Announcement,
    Character,
    CharacterVariation,
    Episode,
    Job,
    JobKind,
    JobRun,
    JobStatus,
    Phase,
    PhaseGate,
    Project,
    QualityScore,
    Scene,
    VariationKind,
)


class Conflict(ValueError):
    """The request would duplicate or contradict stored data."""


# -- projects ---------------------------------------------------------------------------------


@dataclass
class ProjectRow:
    id: int
    slug: str
    name: str
    characters: int
    episodes: int


@dataclass
class VariationRow:
    id: int
    kind: str
    name: str
    source: str


@dataclass
class CharacterRow:
    id: int
    slug: str
    name: str
    variations: list[VariationRow]


@dataclass
class EpisodeRow:
    id: int
    number: int
    title: str
    scenes: int
    cuts: int


def list_projects(session: Session) -> list[ProjectRow]:
    projects = session.scalars(
        select(Project)
        .order_by(Project.slug)
        .options(selectinload(Project.characters), selectinload(Project.episodes))
    )
    return [
        ProjectRow(p.id, p.slug, p.name, len(p.characters), len(p.episodes)) for p in projects
    ]


def _project_by_slug(session: Session, slug: str) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        known = ", ".join(session.scalars(select(Project.slug).order_by(Project.slug))) or "none"
        raise LookupError(f"no project {slug!r} (projects: {known})")
    return project


def list_characters(session: Session, project_slug: str) -> list[CharacterRow]:
    """The project's characters with their ids and variations (what the variation route
    needs)."""
    project = _project_by_slug(session, project_slug)
    characters = session.scalars(
        select(Character)
        .where(Character.project_id == project.id)
        .order_by(Character.slug)
        .options(selectinload(Character.variations))
    )
    return [
        CharacterRow(
            c.id,
            c.slug,
            c.name,
            [
                VariationRow(v.id, v.kind.value, v.name, v.source)
                for v in sorted(c.variations, key=lambda v: (v.kind.value, v.name))
            ],
        )
        for c in characters
    ]


def list_episodes(session: Session, project_slug: str) -> list[EpisodeRow]:
    project = _project_by_slug(session, project_slug)
    episodes = session.scalars(
        select(Episode)
        .where(Episode.project_id == project.id)
        .order_by(Episode.number)
        .options(selectinload(Episode.scenes).selectinload(Scene.cuts))
    )
    return [
        EpisodeRow(e.id, e.number, e.title, len(e.scenes), sum(len(s.cuts) for s in e.scenes))
        for e in episodes
    ]


def already_announced(session: Session, project_id: int, key: str) -> bool:
    found = session.scalar(
        select(Announcement.id).where(
            Announcement.project_id == project_id, Announcement.key == key
        )
    )
    return found is not None


def record_announcement(
    session: Session, project_id: int, key: str, event: str, subject: str
) -> None:
    """Remember a sent notice; a second record of the same one (a concurrent run) is a no-op."""
    from sqlalchemy.dialects.postgresql import insert

    session.execute(
        insert(Announcement)
        .values(project_id=project_id, key=key, event=event, subject=subject)
        .on_conflict_do_nothing(index_elements=["project_id", "key"])
    )


def reproduction_outcome(session: Session, flow_run_id: str) -> str | None:
    """What a reproduce-job run found (identical output or the difference), from its job."""
    job = session.scalar(
        select(Job)
        .where(Job.prefect_flow_run_id == flow_run_id, Job.kind == JobKind.REPRODUCTION)
        .order_by(Job.id.desc())
        .limit(1)
    )
    return job.explanation if job is not None else None


def project_settings(session: Session, project_id: int) -> tuple[str, dict[str, Any]]:
    """(slug, settings) of a project."""
    project = session.get(Project, project_id)
    if project is None:
        raise LookupError(f"no project with id {project_id}")
    return project.slug, dict(project.settings or {})


# -- jobs -------------------------------------------------------------------------------------


@dataclass
class ReproducibleJob:
    job_id: int
    project: str
    phase: str
    status: str
    renderer: str
    workflow_sha256: str | None


def reproducible_job(session: Session, job_id: int) -> ReproducibleJob:
    """The job, if it can be reproduced: LookupError when unknown, Conflict when it has no
    stored workflow (it never rendered, or failed before submitting)."""
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    if job.params is None or not job.params.workflow:
        raise Conflict(
            f"job {job_id} has no stored workflow to reproduce (status {job.status.value})"
        )
    return ReproducibleJob(
        job_id=job.id,
        project=session.get(Project, job.project_id).slug,
        phase=job.phase.value,
        status=job.status.value,
        renderer=job.renderer,
        workflow_sha256=job.params.workflow_sha256,
    )


@dataclass
class ScoreLine:
    metric: str
    subject: str
    value: float | None
    threshold: float | None
    comparator: str
    verdict: str
    model: str
    reason: str | None

    @classmethod
    def of(cls, score: QualityScore) -> ScoreLine:
        return cls(
            metric=score.metric,
            subject=score.subject,
            value=score.value,
            threshold=score.threshold,
            comparator=score.comparator,
            verdict=score.verdict.value,
            model=score.model,
            reason=score.reason,
        )


@dataclass
class RunTimes:
    """One run's work on a job (`JobRun`): how it ended and where its seconds went."""

    number: int
    status: str
    started_at: str
    finished_at: str | None
    error: str | None
    queue_wait_s: float | None
    execution_s: float | None
    download_s: float | None
    scoring_s: float | None
    outage_s: float | None

    @classmethod
    def of(cls, run: JobRun) -> RunTimes:
        return cls(
            number=run.number,
            status=run.status.value,
            started_at=run.started_at.isoformat(),
            finished_at=run.finished_at.isoformat() if run.finished_at else None,
            error=run.error,
            queue_wait_s=run.queue_wait_s,
            execution_s=run.execution_s,
            download_s=run.download_s,
            scoring_s=run.scoring_s,
            outage_s=run.outage_s,
        )


@dataclass
class JobQuality:
    job_id: int
    project: str
    phase: str
    kind: str
    status: str
    attempt: int
    verdict: str | None
    explanation: str
    cut_id: int | None
    character_id: int | None
    scores: list[ScoreLine]
    # metric (and subject, when the gate is per character) -> the gate it was judged against
    thresholds: dict[str, dict[str, Any]]
    # Every run that worked on the job, oldest first: the last is the one that rendered it.
    runs: list[RunTimes]


def job_quality(session: Session, job_id: int) -> JobQuality:
    job = session.scalar(select(Job).where(Job.id == job_id).options(selectinload(Job.scores)))
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    scores = [ScoreLine.of(s) for s in job.scores]
    thresholds = {
        (f"{s.metric}[{s.subject}]" if s.subject else s.metric): {
            "threshold": s.threshold,
            "comparator": s.comparator,
        }
        for s in scores
        if s.threshold is not None
    }
    return JobQuality(
        job_id=job.id,
        project=session.get(Project, job.project_id).slug,
        phase=job.phase.value,
        kind=job.kind.value,
        status=job.status.value,
        attempt=job.attempt,
        verdict=job.verdict.value if job.verdict else None,
        explanation=job.explanation,
        cut_id=job.cut_id,
        character_id=job.character_id,
        scores=scores,
        thresholds=thresholds,
        runs=[RunTimes.of(r) for r in job.runs],
    )


# -- characters -------------------------------------------------------------------------------


@dataclass
class StoredVariation:
    id: int
    character_id: int
    character: str
    kind: str
    name: str
    prompt: str
    reference_image: str | None


def add_variation(
    session: Session,
    character_id: int,
    *,
    kind: VariationKind,
    name: str,
    prompt: str,
    reference_image: str | None = None,
) -> StoredVariation:
    """Store a variation (already normalized by the caller); Conflict on a kind/name the
    character has already."""
    character = session.get(Character, character_id)
    if character is None:
        raise LookupError(f"no character with id {character_id}")
    duplicate = session.scalar(
        select(CharacterVariation.id).where(
            CharacterVariation.character_id == character_id,
            CharacterVariation.kind == kind,
            CharacterVariation.name == name,
        )
    )
    if duplicate is not None:
        raise Conflict(f"character {character.slug!r} already has the {kind.value} {name!r}")
    row = CharacterVariation(
        character_id=character_id,
        kind=kind,
        name=name,
        prompt_delta=prompt,
        reference_image=reference_image,
        # Not in the production file: a re-import keeps it (and says so) rather than drop it.
        source="api",
    )
    try:
        with session.begin_nested():  # a concurrent insert of the same name lands here
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"character {character.slug!r} already has the {kind.value} {name!r}"
        ) from None
    return StoredVariation(
        id=row.id,
        character_id=character_id,
        character=character.slug,
        kind=row.kind.value,
        name=row.name,
        prompt=row.prompt_delta,
        reference_image=row.reference_image,
    )


# -- episodes ---------------------------------------------------------------------------------

EPISODE_JOB_PHASES = (Phase.GENERATION, Phase.ANIMATION)
# Which attempt speaks for a cut in a phase: a passed one, else the one flagged for review,
# else the latest.
_STANDING = {JobStatus.PASSED: 0, JobStatus.NEEDS_REVIEW: 1}


@dataclass
class CutPhaseStatus:
    status: str
    verdict: str | None
    job_id: int
    attempts: int


@dataclass
class CutStatus:
    id: int
    number: int
    description: str
    frames: int
    fps: int
    template: str | None
    phases: dict[str, CutPhaseStatus] = field(default_factory=dict)


@dataclass
class SceneStatus:
    id: int
    number: int
    title: str
    location: str
    time_of_day: str
    cuts: list[CutStatus]


@dataclass
class GateStatus:
    phase: str
    decision: str
    pass_rate: float
    required_rate: float
    items_total: int
    explanation: str
    decided_at: datetime
    flow_run_id: str | None


@dataclass
class EpisodeScenes:
    id: int
    project: str
    number: int
    title: str
    scenes: list[SceneStatus]
    gates: dict[str, GateStatus]


def _phase_status(jobs: list[Job]) -> CutPhaseStatus:
    best = min(jobs, key=lambda j: (_STANDING.get(j.status, 2), -j.attempt))
    return CutPhaseStatus(
        status=best.status.value,
        verdict=best.verdict.value if best.verdict else None,
        job_id=best.id,
        attempts=len(jobs),
    )


def episode_scenes(session: Session, episode_id: int) -> EpisodeScenes:
    episode = session.scalar(
        select(Episode)
        .where(Episode.id == episode_id)
        .options(selectinload(Episode.scenes).selectinload(Scene.cuts))
    )
    if episode is None:
        raise LookupError(f"no episode with id {episode_id}")
    cut_ids = [c.id for s in episode.scenes for c in s.cuts]
    jobs: dict[tuple[int, Phase], list[Job]] = {}
    if cut_ids:
        for job in session.scalars(
            select(Job).where(
                Job.cut_id.in_(cut_ids),
                Job.phase.in_(EPISODE_JOB_PHASES),
                Job.parent_job_id.is_(None),  # reproductions do not speak for the cut
            )
        ):
            jobs.setdefault((job.cut_id, job.phase), []).append(job)
    gates: dict[str, GateStatus] = {}
    for gate in session.scalars(
        select(PhaseGate)
        .where(PhaseGate.episode_id == episode_id)
        .order_by(PhaseGate.decided_at, PhaseGate.id)
    ):
        gates[gate.phase.value] = GateStatus(  # later decisions replace earlier ones
            phase=gate.phase.value,
            decision=gate.decision.value,
            pass_rate=gate.pass_rate,
            required_rate=gate.required_rate,
            items_total=gate.items_total,
            explanation=gate.explanation,
            decided_at=gate.decided_at,
            flow_run_id=gate.prefect_flow_run_id,
        )
    scenes = []
    for scene in episode.scenes:
        cuts = []
        for cut in scene.cuts:
            status = CutStatus(
                id=cut.id,
                number=cut.number,
                description=cut.description,
                frames=cut.frames,
                fps=cut.fps,
                template=cut.template,
            )
            for phase in EPISODE_JOB_PHASES:
                if found := jobs.get((cut.id, phase)):
                    status.phases[phase.value] = _phase_status(found)
            cuts.append(status)
        scenes.append(
            SceneStatus(
                id=scene.id,
                number=scene.number,
                title=scene.title,
                location=scene.location,
                time_of_day=scene.time_of_day,
                cuts=cuts,
            )
        )
    return EpisodeScenes(
        id=episode.id,
        project=session.get(Project, episode.project_id).slug,
        number=episode.number,
        title=episode.title,
        scenes=scenes,
        gates=gates,
    )


@dataclass
class LookRow:
    """A character's look: the base look (name "base") first, then the later ones."""

    id: int | None  # None: the base look (the character's own fields)
    name: str
    from_episode: int | None
    from_story: str | None  # "story@commit", or a story scene or chapter slug
    # The episodes (numbers) it is the look in force for, where a cut names no other.
    in_force_episodes: list[int]
    prompt: str
    attributes: dict[str, str]
    reference_ids: list[int]  # what its renders are judged against
    replaces_references: bool = False
    retired: bool = False  # dropped from the production file, kept for its renders
    face_thresholds: dict[str, float | None] = field(default_factory=dict)  # per face model


def character_looks(session: Session, character_id: int) -> list[LookRow]:
    from db.briefs import look_references
    from db.looks import LookChooser, story_point_text

    character = session.get(Character, character_id)
    if character is None:
        raise LookupError(f"no character with id {character_id}")
    chooser = LookChooser(session, character.project_id)
    in_force: dict[int | None, list[int]] = {}
    for episode_id, number in sorted(chooser.numbers.items(), key=lambda item: item[1]):
        look = chooser.look_for(character, episode_id)
        in_force.setdefault(look.id if look else None, []).append(number)

    def thresholds(look_id: int | None) -> dict[str, float | None]:
        return {
            c.model_name: c.threshold for c in character.face_calibrations if c.look_id == look_id
        }

    rows = [
        LookRow(
            id=None,
            name="base",
            from_episode=None,
            from_story=None,
            in_force_episodes=in_force.get(None, []),
            prompt=character.base_prompt,
            attributes=character.attribute_map(),
            reference_ids=[r.id for r in look_references(character, None)],
            face_thresholds=thresholds(None),
        )
    ]
    for look in character.looks:
        rows.append(
            LookRow(
                id=look.id,
                name=look.name,
                from_episode=look.from_episode,
                from_story=story_point_text(look),
                in_force_episodes=in_force.get(look.id, []),
                prompt=look.prompt_delta,
                attributes=look.attribute_map(),
                reference_ids=[r.id for r in look_references(character, look)],
                replaces_references=look.replaces_references,
                retired=look.retired,
                face_thresholds=thresholds(look.id),
            )
        )
    return rows
