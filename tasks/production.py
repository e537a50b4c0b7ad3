"""The production's rows as a run reads and writes them: each call is one short transaction,
run off the event loop.

Flows are async (async subflows cost ~0.1 s against ~1 s for sync ones), so database work
goes to a worker thread and never blocks the other cuts rendering meanwhile.

The steps every cut takes (load it, open its attempt, read its attempts again) are plain
calls, not Prefect tasks: a task run is three events the Prefect server records and shows,
and a cut's own steps say nothing in the UI that its subflow, its `render` and its
`judge-cut` tasks and its log lines do not (docs/benchmarks.md: the orchestrator's CPU per
cut). Rarer steps that a person looks for (a gate, a flag, an error) stay tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from db import briefs as db_briefs
from db import cancellations as db_cancellations
from db import jobs as db_jobs
from db import review as db_review
from db.engine import session_scope
from db.vocabulary import GateDecision, GateScope, JobKind, JobStatus, Phase, Verdict

T = TypeVar("T")


async def in_session(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(session, ...)`` in one transaction on a worker thread."""

    def run() -> T:
        with session_scope() as session:
            return fn(session, *args, **kwargs)

    return await anyio.to_thread.run_sync(run)


class AttemptState(BaseModel):
    job_id: int
    attempt: int
    status: JobStatus
    verdict: Verdict | None = None
    outputs: list[str] = Field(default_factory=list)
    passed_metrics: int = 0
    margin: float = 0.0  # sum of how far each measured metric cleared (or missed) its threshold
    decided_by: str | None = None  # a person's newest decision on this attempt, if any
    decision: str | None = None  # approved | rejected


class AttemptHistory(BaseModel):
    """What is stored of a subject's attempts in one phase (a cut's, a character sheet's)."""

    attempts: list[AttemptState] = Field(default_factory=list)
    # First attempt of the current budget: after a person rejects the cut, the next run
    # renders from the attempt (and seed) after its last one, with a fresh budget.
    fresh_from: int = 1

    @property
    def passed(self) -> AttemptState | None:
        return next((a for a in self.attempts if a.status is JobStatus.PASSED), None)

    def attempt(self, number: int) -> AttemptState | None:
        return next((a for a in self.attempts if a.attempt == number), None)


class CutState(AttemptHistory):
    cut_id: int
    phase: Phase
    approved_keyframe: str | None = None  # animation phase: the image to animate


def _attempt_state(job) -> AttemptState:
    margin = 0.0
    passed = 0
    for score in job.scores:
        if score.value is None or score.threshold is None:
            continue
        sign = -1.0 if score.comparator == "<=" else 1.0
        margin += sign * (score.value - score.threshold)
        passed += score.verdict is Verdict.PASSED
    return AttemptState(
        job_id=job.id,
        attempt=job.attempt,
        status=job.status,
        verdict=job.verdict,
        outputs=[a.uri for a in job.artifacts],
        passed_metrics=passed,
        margin=margin,
    )


def read_cut_state(session, cut_id: int, phase: Phase) -> CutState:
    jobs = db_jobs.cut_jobs(session, cut_id, phase)
    decisions = db_review.latest_decisions(session, [j.id for j in jobs])
    attempts = []
    for job in jobs:
        attempt = _attempt_state(job)
        if (decided := decisions.get(job.id)) is not None:
            attempt.decided_by, attempt.decision = decided.reviewer, decided.outcome.value
        attempts.append(attempt)
    state = CutState(
        cut_id=cut_id,
        phase=phase,
        attempts=attempts,
        fresh_from=db_review.fresh_from(session, cut_id, phase),
    )
    if phase is Phase.ANIMATION:
        keyframes = db_jobs.cut_jobs(session, cut_id, Phase.GENERATION)
        approved = next((j for j in keyframes if j.status is JobStatus.PASSED), None)
        if approved and approved.artifacts:
            state.approved_keyframe = approved.artifacts[0].uri
    return state


@dataclass
class CutStart:
    """What a cut run starts from: its brief, what is stored of its attempts, and why it
    must not be rendered (a cancel since the run's start), if it must not."""

    brief: db_briefs.CutBrief
    state: CutState
    cancelled: str | None = None


async def load_cut(cut_id: int, phase: Phase, run_started_at: datetime | None) -> CutStart:
    """What a cut run starts from, in one transaction (one of a cut's few: see the module's
    doc); ``run_started_at``: the run's start, since when a cancel covering the cut counts."""

    def read(session) -> CutStart:
        return CutStart(
            brief=db_briefs.load_cut_brief(session, cut_id),
            state=read_cut_state(session, cut_id, phase),
            cancelled=None
            if run_started_at is None
            else db_cancellations.cut_cancelled_since(session, cut_id, run_started_at),
        )

    return await in_session(read)


async def cut_state(cut_id: int, phase: Phase) -> CutState:
    return await in_session(read_cut_state, cut_id, phase)


class AttemptTarget(BaseModel):
    """Whose attempt a job is: a cut's keyframe or animation, or a character's sheet."""

    project_id: int
    phase: Phase
    kind: JobKind
    cut_id: int | None = None
    character_id: int | None = None
    parent_job_id: int | None = None  # a reproduction's original
    story_bible_version: int | None = None
    # The cast's looks other than the base look, recorded on the job.
    look_ids: list[int] = Field(default_factory=list)

    @classmethod
    def of_cut(cls, brief: db_briefs.CutBrief, phase: Phase) -> AttemptTarget:
        kind = JobKind.KEYFRAME if phase is Phase.GENERATION else JobKind.ANIMATION
        return cls(
            project_id=brief.project_id,
            phase=phase,
            kind=kind,
            cut_id=brief.cut_id,
            story_bible_version=brief.style.version,
            look_ids=[m.look_id for m in brief.cast if m.look_id is not None],
        )

    @classmethod
    def of_sheet(cls, brief: db_briefs.SheetBrief) -> AttemptTarget:
        return cls(
            project_id=brief.project_id,
            phase=Phase.CONCEPT,
            kind=JobKind.CHARACTER_SHEET,
            character_id=brief.character.character_id,
            story_bible_version=brief.style.version,
            look_ids=[brief.character.look_id] if brief.character.look_id else [],
        )


async def open_attempt(
    target: AttemptTarget, attempt: int, renderer: str, flow_run_id: str | None
) -> int:
    """The job row of this attempt (found again on a re-run), marked running for this run
    (by this process: a later run tells from it whether this one crashed)."""
    from tasks.heartbeat import beating, keep_beating
    from tasks.recovery import this_process

    process = this_process()
    if not beating(process):
        await anyio.to_thread.run_sync(keep_beating, process)  # before a job run names it

    def run(session) -> int:
        job, _ = db_jobs.get_or_create_job(
            session,
            project_id=target.project_id,
            phase=target.phase,
            kind=target.kind,
            attempt=attempt,
            cut_id=target.cut_id,
            character_id=target.character_id,
            parent_job_id=target.parent_job_id,
            renderer=renderer,
        )
        db_jobs.mark_running(
            session,
            job.id,
            flow_run_id=flow_run_id,
            renderer=renderer,
            story_bible_version=target.story_bible_version,
            process=process,
            look_ids=target.look_ids,
        )
        return job.id

    return await in_session(run)


def read_sheet_history(session, character_id: int, look_id: int | None = None) -> AttemptHistory:
    """The sheet attempts of one look (None: the base look). Attempt numbers are the
    character's (a job is one per character and attempt): a look's first sheet numbers on from
    the character's last attempt."""
    jobs = db_jobs.character_jobs(session, character_id, Phase.CONCEPT)
    wanted = {look_id} if look_id is not None else set()
    own = [j for j in jobs if {look.id for look in j.looks} == wanted]
    fresh_from = own[0].attempt if own else 1 + max((j.attempt for j in jobs), default=0)
    return AttemptHistory(attempts=[_attempt_state(j) for j in own], fresh_from=fresh_from)


@task(name="load-sheet", cache_policy=NO_CACHE)
async def load_sheet(
    project: str, character: str, look: str | None = None
) -> tuple[db_briefs.SheetBrief, AttemptHistory]:
    """A sheet run's start, in one transaction: the brief and its stored attempts."""

    def read(session) -> tuple[db_briefs.SheetBrief, AttemptHistory]:
        brief = db_briefs.load_sheet_brief(session, project, character, look)
        history = read_sheet_history(session, brief.character.character_id, brief.character.look_id)
        return brief, history

    return await in_session(read)


@task(name="read-sheet-history", cache_policy=NO_CACHE)
async def sheet_history(character_id: int, look_id: int | None = None) -> AttemptHistory:
    return await in_session(read_sheet_history, character_id, look_id)


@task(name="approve-sheet", cache_policy=NO_CACHE)
async def approve_sheet(
    job_id: int, paths: list[str], views: list[str], embeddings: dict, model: str
) -> int:
    """The approved sheet's views become the character's references (with embeddings)."""
    rows = [
        (path, view, embeddings.get(view), model) for view, path in zip(views, paths, strict=False)
    ]

    def approve(session) -> int:
        from tasks.face_calibration import calibrate_project

        added = db_jobs.approve_sheet(session, job_id, rows)
        if added and model:  # new references: the cast's thresholds move, in one transaction
            session.flush()
            calibrate_project(
                session, db_jobs.get_job(session, job_id).project_id, model_name=model
            )
        return added

    return await in_session(approve)


@task(name="flag-for-review", cache_policy=NO_CACHE)
async def flag_for_review(job_id: int, note: str) -> None:
    await in_session(db_jobs.flag_for_review, job_id, note)


@task(name="record-error", cache_policy=NO_CACHE)
async def record_error(job_id: int, error: str) -> None:
    await in_session(db_jobs.record_error, job_id, error)


@task(name="record-cancelled", cache_policy=NO_CACHE)
async def record_cancelled(job_id: int, reason: str) -> None:
    await in_session(db_jobs.record_cancelled, job_id, reason)


def record_cancelled_now(job_id: int, reason: str) -> None:
    """`record_cancelled` for a task that is being cancelled: in this thread, with no await a
    second cancel (asyncio repeats it until the task ends) could cut short, and no task run
    the stopping Prefect engine would have to create."""
    with session_scope() as session:
        db_jobs.record_cancelled(session, job_id, reason)


@task(name="record-phase-gate", cache_policy=NO_CACHE)
async def record_phase_gate(
    *,
    project_id: int,
    episode_id: int | None,
    character_id: int | None = None,
    scope: GateScope,
    phase: Phase,
    decision: Any,
    flow_run_id: str | None,
) -> int:
    """Store a PhaseGateDecision (tasks.scoring.gates) and return the gate's id."""

    def run(session) -> int:
        gate = db_jobs.record_phase_gate(
            session,
            project_id=project_id,
            scope=scope,
            phase=phase,
            decision=GateDecision(decision.decision),
            items_total=decision.total,
            items_passed=decision.passed,
            pass_rate=decision.pass_rate or 0.0,
            required_rate=decision.required_rate,
            explanation=decision.explanation,
            details={"items": [i.model_dump(mode="json") for i in decision.items]},
            episode_id=episode_id,
            character_id=character_id,
            flow_run_id=flow_run_id,
        )
        return gate.id

    return await in_session(run)


class ReviewItem(BaseModel):
    cut_id: int
    label: str
    verdict: Verdict
    keyframe_job: int | None = None
    animation_job: int | None = None
    output: str | None = None
    reason: str = ""


def read_review_items(session, episode_id: int) -> list[ReviewItem]:
    """Each cut of the episode passes review when its keyframe and its animation both passed."""
    from db.briefs import load_cut_brief as brief_of

    items = []
    for cut_id in db_jobs.episode_cut_ids(session, episode_id):
        label = brief_of(session, cut_id).label
        found: dict[Phase, Any] = {}
        for phase in (Phase.GENERATION, Phase.ANIMATION):
            jobs = db_jobs.cut_jobs(session, cut_id, phase)
            found[phase] = next((j for j in jobs if j.status is JobStatus.PASSED), None)
        keyframe, animation = found[Phase.GENERATION], found[Phase.ANIMATION]
        missing = [p.value for p, j in found.items() if j is None]
        items.append(
            ReviewItem(
                cut_id=cut_id,
                label=label,
                verdict=Verdict.FAILED if missing else Verdict.PASSED,
                keyframe_job=keyframe.id if keyframe else None,
                animation_job=animation.id if animation else None,
                output=animation.artifacts[0].uri if animation and animation.artifacts else None,
                reason=f"no approved {' or '.join(missing)}" if missing else "",
            )
        )
    return items


@task(name="episode-review-items", cache_policy=NO_CACHE)
async def episode_review_items(episode_id: int) -> list[ReviewItem]:
    return await in_session(read_review_items, episode_id)


class HumanDecision(BaseModel):
    """One person's decision on a cut, as given in the Prefect UI, the API or the CLI."""

    cut_id: int
    phase: Phase
    outcome: str  # approved | rejected
    reviewer: str
    comment: str = ""
    job_id: int | None = None


@task(name="record-review-decisions", cache_policy=NO_CACHE)
async def record_review_decisions(decisions: list[HumanDecision], source: str) -> int:
    """Store and apply decisions in one transaction; returns how many were stored."""

    def run(session) -> int:
        for d in decisions:
            db_review.decide(
                session,
                cut_id=d.cut_id,
                phase=d.phase,
                outcome=d.outcome,
                reviewer=d.reviewer,
                comment=d.comment,
                source=source,
                job_id=d.job_id,
            )
        return len(decisions)

    return await in_session(run)
