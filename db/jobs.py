"""Jobs as they happen: created, started, rendered, judged, failed; and phase gates.

Every function writes in the caller's transaction. Flows call them through thin tasks, one
short transaction per step, so what is in PostgreSQL always matches what has happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import QueryableAttribute, Session, joinedload

from db.models import (
    Artifact,
    CharacterLook,
    Cut,
    GateDecision,
    GateScope,
    GenerationParams,
    Job,
    JobKind,
    JobRun,
    JobRunStatus,
    JobStatus,
    Phase,
    PhaseGate,
    QualityScore,
    Scene,
    Verdict,
)
from db.queries import get_episode
from db.renders import RenderResult


@dataclass(frozen=True)
class RunProcess:
    """The process that takes a job up: how a later run tells a crash from a live run."""

    host: str
    pid: int
    started: str | None = None  # the process's start time, so a reused pid is not alive


PARAM_FIELDS = (
    "template",
    "template_version",
    "seed",
    "checkpoint",
    "sampler",
    "scheduler",
    "steps",
    "cfg",
    "denoise",
    "width",
    "height",
    "frames",
    "fps",
    "positive_prompt",
    "negative_prompt",
    "loras",
    "controlnets",
    "ipadapter",
)


def now() -> datetime:
    return datetime.now(UTC)


def get_or_create_job(
    session: Session,
    *,
    project_id: int,
    phase: Phase,
    kind: JobKind,
    attempt: int,
    cut_id: int | None = None,
    character_id: int | None = None,
    parent_job_id: int | None = None,
    renderer: str = "comfyui",
) -> tuple[Job, bool]:
    """The job for this subject and attempt: found again on a re-run, created only once."""
    query = select(Job).where(
        Job.project_id == project_id,
        Job.phase == phase,
        Job.kind == kind,
        Job.attempt == attempt,
        Job.cut_id.is_(None) if cut_id is None else Job.cut_id == cut_id,
        Job.character_id.is_(None) if character_id is None else Job.character_id == character_id,
        Job.parent_job_id.is_(None)
        if parent_job_id is None
        else Job.parent_job_id == parent_job_id,
    )
    job = session.scalar(query.with_for_update())
    if job is not None:
        return job, False
    job = Job(
        project_id=project_id,
        phase=phase,
        kind=kind,
        attempt=attempt,
        cut_id=cut_id,
        character_id=character_id,
        parent_job_id=parent_job_id,
        renderer=renderer,
        status=JobStatus.PENDING,
        # Known empty: `mark_running` then adds the first run without reading them back.
        runs=[],
        looks=[],
    )
    session.add(job)
    session.flush()
    return job, True


def get_job(session: Session, job_id: int, *joined: QueryableAttribute[Any]) -> Job:
    """The job; ``joined``: its relationships read in the same statement (a job's writes
    that touch its runs read them so, not with a second query each)."""
    job = session.get(Job, job_id, options=[joinedload(a) for a in joined])
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    return job


def get_job_status(session: Session, job_id: int) -> JobStatus:
    return get_job(session, job_id).status


def mark_running(
    session: Session,
    job_id: int,
    *,
    flow_run_id: str | None,
    renderer: str,
    story_bible_version: int | None,
    prompt_id: str | None = None,
    server: str | None = None,
    process: RunProcess | None = None,
    look_ids: list[int] | None = None,
) -> Job:
    """The job taken up by this run: running, timed from now, with a new `JobRun` row."""
    job = get_job(session, job_id, Job.runs, Job.looks)
    if look_ids is not None:
        job.looks = (
            list(session.scalars(select(CharacterLook).where(CharacterLook.id.in_(look_ids))))
            if look_ids
            else []  # the base looks: no query to learn that
        )
    job.status = JobStatus.RUNNING
    job.renderer = renderer
    job.story_bible_version = story_bible_version
    job.prefect_flow_run_id = flow_run_id
    job.comfyui_prompt_id = prompt_id or job.comfyui_prompt_id
    job.comfyui_server = server or job.comfyui_server
    # Per attempt: a job re-used after an error or a crash is timed from this run's start.
    job.queued_at = job.started_at = now()
    job.finished_at = None
    job.error = None
    runs = list(job.runs)
    for earlier in runs:
        if earlier.status is JobRunStatus.RUNNING:
            _end_run(earlier, JobRunStatus.CRASHED, f"taken up again by flow run {flow_run_id}")
    job.runs.append(
        JobRun(
            number=max((r.number for r in runs), default=0) + 1,
            status=JobRunStatus.RUNNING,
            prefect_flow_run_id=flow_run_id,
            host=process.host if process else "",
            pid=process.pid if process else None,
            process_started=process.started if process else None,
            comfyui_prompt_id=prompt_id,
            comfyui_server=server,
            started_at=job.started_at,
        )
    )
    session.flush()
    return job


def current_run(job: Job) -> JobRun | None:
    """The job's latest run (the one working on it now, or the last that did)."""
    return job.runs[-1] if job.runs else None


def _end_run(run: JobRun, status: JobRunStatus, error: str | None = None) -> None:
    run.status = status
    run.error = error
    run.finished_at = now()


def record_prompt_finished(
    session: Session, job_id: int, *, prompt_id: str, server: str, outputs: list[dict[str, Any]]
) -> None:
    """ComfyUI's outputs of a finished prompt, stored before they are downloaded: a later
    run (the server restarted, its history gone) downloads them instead of rendering."""
    job = get_job(session, job_id, Job.runs)
    run = current_run(job)
    if run is not None:
        run.comfyui_prompt_id, run.comfyui_server, run.outputs = prompt_id, server, outputs
    job.comfyui_prompt_id, job.comfyui_server = prompt_id, server


def finished_prompt(session: Session, job_id: int, prompt_id: str) -> JobRun | None:
    """The latest run of this job that saw `prompt_id` finish (with its outputs), if any."""
    return session.scalar(
        select(JobRun)
        .where(
            JobRun.job_id == job_id,
            JobRun.comfyui_prompt_id == prompt_id,
            func.jsonb_array_length(JobRun.outputs) > 0,
        )
        .order_by(JobRun.number.desc())
        .limit(1)
    )


def record_render(
    session: Session, job_id: int, result: RenderResult, *, extra: dict[str, Any] | None = None
) -> Job:
    """Parameters, the exact workflow and the outputs of a finished render, in one go."""
    job = get_job(session, job_id, Job.runs, Job.params)
    params = result.params
    values = {name: params.get(name) for name in PARAM_FIELDS if params.get(name) is not None}
    stored = job.params or GenerationParams(job_id=job.id)
    for name, value in values.items():
        setattr(stored, name, value)
    stored.workflow = result.workflow
    stored.workflow_sha256 = result.workflow_sha256
    stored.environment = result.environment
    # Images uploaded to the server for this render: content-addressed name and source file.
    uploads = {"uploads": params["uploads"]} if params.get("uploads") else {}
    stored.extra = {"renderer": result.renderer, **uploads, **(extra or {})}
    job.params = stored
    session.execute(delete(Artifact).where(Artifact.job_id == job.id))
    for out in result.outputs:
        session.add(
            Artifact(
                job_id=job.id,
                kind=out.kind,
                uri=out.path,
                sha256=out.sha256,
                mime=out.mime,
                size_bytes=out.size_bytes,
                width=out.width,
                height=out.height,
                frames=out.frames,
            )
        )
    job.comfyui_prompt_id = result.prompt_id or job.comfyui_prompt_id
    job.comfyui_server = result.server or job.comfyui_server
    job.status = JobStatus.RENDERED
    job.finished_at = now()
    run = current_run(job)
    if run is not None:
        _end_run(run, JobRunStatus.RENDERED)
        run.comfyui_prompt_id = result.prompt_id or run.comfyui_prompt_id
        run.comfyui_server = result.server or run.comfyui_server
        for name, value in result.times.model_dump().items():
            setattr(run, name, value)
        run.finished_at = job.finished_at
    return job


def record_judgement(
    session: Session,
    job_id: int,
    *,
    verdict: Verdict,
    explanation: str,
    lines: Iterable[Any],
    models: Mapping[str, str] | None = None,
    details: Mapping[tuple[str, str], dict[str, Any]] | None = None,
    scoring_s: float | None = None,
) -> Job:
    """Scores (one row per metric and subject) and the job's verdict, replacing earlier ones.

    ``lines`` are gate lines with metric, subject, value, threshold, comparator, verdict, reason.
    """
    job = get_job(session, job_id, Job.runs)
    session.execute(delete(QualityScore).where(QualityScore.job_id == job.id))
    models = models or {}
    details = details or {}
    for line in lines:
        subject = line.subject or ""
        session.add(
            QualityScore(
                job_id=job.id,
                metric=line.metric,
                subject=subject,
                value=line.value,
                threshold=line.threshold,
                comparator=line.comparator or ">=",
                verdict=line.verdict or Verdict.COULD_NOT_JUDGE,
                model=models.get(line.metric, ""),
                reason=line.reason,
                details=details.get((line.metric, subject), {}),
            )
        )
    job.verdict = verdict
    job.explanation = explanation
    run = current_run(job)
    if run is not None and scoring_s is not None:
        run.scoring_s = scoring_s
    job.status = JobStatus.PASSED if verdict is Verdict.PASSED else JobStatus.FAILED
    return job


def record_error(session: Session, job_id: int, error: str) -> Job:
    job = get_job(session, job_id, Job.runs)
    job.status = JobStatus.ERROR
    job.error = error
    job.finished_at = now()
    run = current_run(job)
    if run is not None and run.status is JobRunStatus.RUNNING:
        _end_run(run, JobRunStatus.ERROR, error)
    return job


def record_cancelled(session: Session, job_id: int, reason: str) -> Job:
    job = get_job(session, job_id, Job.runs)
    # The first reason stays: a person's cancel, not the interrupted render it caused.
    if job.status is not JobStatus.CANCELLED or not job.error:
        job.error = reason
    job.status = JobStatus.CANCELLED
    job.finished_at = now()
    run = current_run(job)
    if run is not None and run.status is JobRunStatus.RUNNING:
        _end_run(run, JobRunStatus.CANCELLED, reason)
    return job


def latest_runs(session: Session, job_ids: Iterable[int]) -> dict[int, JobRun]:
    """Each job's latest run (the one whose figures a report shows)."""
    wanted = [i for i in job_ids if i is not None]
    if not wanted:
        return {}
    latest = (
        select(JobRun.job_id, func.max(JobRun.number).label("number"))
        .where(JobRun.job_id.in_(wanted))
        .group_by(JobRun.job_id)
        .subquery()
    )
    rows = session.scalars(
        select(JobRun).join(
            latest, (JobRun.job_id == latest.c.job_id) & (JobRun.number == latest.c.number)
        )
    )
    return {run.job_id: run for run in rows}


def cancellable_jobs(
    session: Session,
    project_slug: str,
    episode: int,
    *,
    scene: int | None = None,
    cut: int | None = None,
) -> list[Job]:
    """The episode's jobs (of one scene, of one cut) that are waiting or rendering."""
    found = get_episode(session, project_slug, episode)
    query = (
        select(Job)
        .join(Cut, Job.cut_id == Cut.id)
        .join(Scene, Cut.scene_id == Scene.id)
        .where(
            Scene.episode_id == found.id,
            Job.status.in_([JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .order_by(Job.id)
    )
    if scene is not None:
        query = query.where(Scene.number == scene)
    if cut is not None:
        query = query.where(Cut.number == cut)
    return list(session.scalars(query))


def end_jobs_left_running(
    session: Session, process: RunProcess, project_slug: str, episode: int, reason: str
) -> list[int]:
    """End, cancelled with ``reason``, the episode's jobs that ``process`` still has running:
    what a run that is being stopped opened and did not get to end itself. Returns their ids."""
    found = get_episode(session, project_slug, episode)
    runs = session.scalars(
        select(JobRun)
        .join(Job, JobRun.job_id == Job.id)
        .join(Cut, Job.cut_id == Cut.id)
        .join(Scene, Cut.scene_id == Scene.id)
        .where(
            Scene.episode_id == found.id,
            JobRun.status == JobRunStatus.RUNNING,
            JobRun.host == process.host,
            JobRun.pid == process.pid,
            JobRun.process_started == process.started,
        )
        .order_by(JobRun.job_id)
    )
    ended = [run.job_id for run in runs]
    for job_id in ended:
        record_cancelled(session, job_id, reason)
    return ended


def running_job_runs(session: Session) -> list[JobRun]:
    """Every job run still marked running, with its job (oldest first)."""
    return list(
        session.scalars(
            select(JobRun).where(JobRun.status == JobRunStatus.RUNNING).order_by(JobRun.id)
        )
    )


def running_jobs_without_run(session: Session) -> list[Job]:
    """Jobs marked running that no job run accounts for (taken up before job runs existed)."""
    live = select(JobRun.job_id).where(JobRun.status == JobRunStatus.RUNNING)
    return list(
        session.scalars(
            select(Job).where(Job.status == JobStatus.RUNNING, Job.id.not_in(live)).order_by(Job.id)
        )
    )


def mark_crashed(session: Session, job_id: int, reason: str) -> Job:
    """A job whose process died: its run crashed, the job an error a re-run renders again."""
    job = get_job(session, job_id, Job.runs)
    run = current_run(job)
    if run is not None and run.status is JobRunStatus.RUNNING:
        _end_run(run, JobRunStatus.CRASHED, reason)
    if job.status is JobStatus.RUNNING:
        job.status = JobStatus.ERROR
        job.error = f"crashed: {reason}"
        job.finished_at = now()
    return job


def flag_for_review(session: Session, job_id: int, note: str) -> Job:
    """Flag the best attempt of a subject; only one attempt per cut and phase is flagged."""
    job = get_job(session, job_id)
    siblings = select(Job).where(
        Job.id != job.id,
        Job.phase == job.phase,
        Job.kind == job.kind,
        Job.status == JobStatus.NEEDS_REVIEW,
        Job.parent_job_id.is_(None),
        Job.cut_id == job.cut_id if job.cut_id else Job.character_id == job.character_id,
    )
    for other in session.scalars(siblings):
        other.status = JobStatus.FAILED
    job.status = JobStatus.NEEDS_REVIEW
    kept = [line for line in job.explanation.splitlines() if not line.startswith("flagged for")]
    job.explanation = "\n".join([note, *kept]).strip()
    return job


def cut_jobs(session: Session, cut_id: int, phase: Phase) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.cut_id == cut_id, Job.phase == phase, Job.parent_job_id.is_(None))
            .order_by(Job.attempt)
        )
    )


def episode_cut_ids(session: Session, episode_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Cut.id)
            .join(Scene)
            .where(Scene.episode_id == episode_id)
            .order_by(Scene.number, Cut.number)
        )
    )


def record_phase_gate(
    session: Session,
    *,
    project_id: int,
    scope: GateScope,
    phase: Phase,
    decision: GateDecision,
    items_total: int,
    items_passed: int,
    pass_rate: float,
    required_rate: float,
    explanation: str,
    details: dict[str, Any],
    episode_id: int | None = None,
    character_id: int | None = None,
    flow_run_id: str | None = None,
) -> PhaseGate:
    gate = PhaseGate(
        project_id=project_id,
        scope=scope,
        episode_id=episode_id,
        character_id=character_id,
        phase=phase,
        decision=decision,
        items_total=items_total,
        items_passed=items_passed,
        pass_rate=pass_rate,
        required_rate=required_rate,
        explanation=explanation,
        details=details,
        prefect_flow_run_id=flow_run_id,
    )
    session.add(gate)
    session.flush()
    return gate


def count_jobs(session: Session, **filters: Any) -> int:
    query = select(func.count()).select_from(Job)
    for name, value in filters.items():
        query = query.where(getattr(Job, name) == value)
    return session.scalar(query) or 0


def references_without_embedding(session: Session, project_id: int, model_name: str) -> list:
    from db.models import Character, CharacterReference, FaceEmbedding

    embedded = select(FaceEmbedding.reference_id).where(FaceEmbedding.model_name == model_name)
    return list(
        session.scalars(
            select(CharacterReference)
            .join(Character)
            .where(Character.project_id == project_id, CharacterReference.id.not_in(embedded))
            .order_by(CharacterReference.id)
        )
    )


def store_face_embedding(
    session: Session,
    reference_id: int,
    *,
    model_name: str,
    vector: list[float],
    bbox: list[float] | None = None,
    det_score: float | None = None,
) -> None:
    from db.models import FaceEmbedding

    session.add(
        FaceEmbedding(
            reference_id=reference_id,
            model_name=model_name,
            vector=[float(v) for v in vector],
            bbox=bbox,
            det_score=det_score,
        )
    )


def character_jobs(session: Session, character_id: int, phase: Phase) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.character_id == character_id,
                Job.phase == phase,
                Job.cut_id.is_(None),
                Job.parent_job_id.is_(None),
            )
            .order_by(Job.attempt)
        )
    )


def approve_sheet(
    session: Session, job_id: int, views: list[tuple[str, str, list[float] | None, str]]
) -> int:
    """Store an approved sheet's images as the character's references, with embeddings.

    ``views``: (path, view name, embedding or None, face model name). Returns how many new
    references were added (a re-run adds none). A sheet rendered in a look adds to that look's
    references; one in the base look, to the anchors.
    """
    from db.models import CharacterReference, FaceEmbedding

    job = get_job(session, job_id)
    look_id = job.looks[0].id if job.looks else None
    existing = {
        r.path
        for r in session.scalars(
            select(CharacterReference).where(CharacterReference.character_id == job.character_id)
        )
    }
    added = 0
    for path, view, vector, model_name in views:
        if path in existing:
            continue
        ref = CharacterReference(
            character_id=job.character_id,
            path=path,
            view=view,
            source="sheet",
            source_job_id=job.id,
            look_id=look_id,
        )
        if vector is not None:
            ref.embeddings.append(FaceEmbedding(model_name=model_name, vector=vector))
        session.add(ref)
        added += 1
    return added
