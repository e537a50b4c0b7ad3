"""Cancelling renders: `anime cancel`, and a cancel of the run in the Prefect UI.

A cancel of an episode (one scene, one cut) is recorded first (db/cancellations.py): a run
that started before it submits none of those cuts, whether they had a job yet or not. Then the
prompts of the waiting or rendering jobs are interrupted or taken off the queue on every
ComfyUI server (the prompt id of a job's attempt is derived, `prompt_id_for`, so a prompt is
found even before the job records where it went) and the jobs end `cancelled`; the run that
rendered them sees the prompt interrupted, ends the job's run `cancelled` and gives its slot
back. A cancel of the whole episode also ends the episode's Prefect flow run: set Cancelling,
as the UI's Cancel button does.

Prefect 3 observes a Cancelling flow run only where a worker or runner started it (it kills
that process); a run started in a terminal (`anime render`) is seen by nothing. So the episode
flow watches its own state (`cancel_on_request`): on Cancelling it cancels its renders as
above, stops at once and ends Cancelled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from prefect import get_run_logger

# Prefect's own source of truth for a runner's stop (`flow_engine._termination_intent`):
# private, so pinned with Prefect in pyproject.toml; tests/flows/test_cancel.py covers it.
from prefect._internal.control_listener import get_intent
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import MissingContextError
from prefect.states import Cancelling

from blocks.comfyui import (
    ComfyUICancelled,
    ComfyUIError,
    ComfyUIServer,
    find_server,
    prompt_id_for,
    saved_servers,
)
from db import cancellations as db_cancellations
from db import jobs as db_jobs
from db.engine import session_scope
from db.identity import database_id
from tasks.production import in_session

CANCEL_TIMEOUT_S = 2.0  # per server: a server that does not answer by then is reported
# How often a run reads its own state: detection plus withdrawal stays under 2 s, and a read
# a second is a small share of the Prefect server's work on a long run (four a second were
# about two requests per cut at two seconds a render: docs/benchmarks.md).
WATCH_INTERVAL_S = 1.0
END_RUN_TIMEOUT_S = 20.0  # how long `anime cancel` waits for the episode run to end
BY_A_PERSON = "cancelled by a person"
OPEN_RUN_STATES = [StateType.RUNNING, StateType.PENDING, StateType.PAUSED, StateType.CANCELLING]


@dataclass
class CancelledJob:
    job_id: int
    prompt_id: str
    outcomes: dict[str, str] = field(default_factory=dict)  # server URL -> what happened

    def describe(self) -> str:
        done = [
            f"{outcome} on {url}"
            for url, outcome in self.outcomes.items()
            if outcome in ("interrupted", "dequeued")
        ]
        return f"job {self.job_id}: cancelled" + (f" ({', '.join(done)})" if done else "")


@dataclass
class Cancellation:
    jobs: list[CancelledJob] = field(default_factory=list)
    # The episode's Prefect flow runs this cancel ended: flow run id -> its state after it.
    flow_runs: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [job.describe() for job in self.jobs]
        out += [f"flow run {run_id}: {state}" for run_id, state in self.flow_runs.items()]
        return out


async def cancel_renders(
    project: str,
    episode: int,
    *,
    scene: int | None = None,
    cut: int | None = None,
    reason: str = BY_A_PERSON,
    servers: Sequence[str] = (),
    end_runs: bool = True,
) -> Cancellation:
    """Cancel the episode's renders (one scene's, one cut's) on every saved ComfyUI server
    and on ``servers`` (block names or URLs a run uses); a whole episode's cancel also ends
    its open Prefect flow runs unless ``end_runs`` is False (the run cancelling itself)."""

    def record(session) -> list[tuple[int, str]]:
        db_cancellations.record_cancellation(
            session, project, episode, scene=scene, cut=cut, reason=reason
        )
        jobs = db_jobs.cancellable_jobs(session, project, episode, scene=scene, cut=cut)
        # The job is cancelled first: a render waiting for a slot checks it before submitting.
        for job in jobs:
            db_jobs.record_cancelled(session, job.id, reason)
        database = database_id(session)
        return [
            (j.id, j.comfyui_prompt_id or prompt_id_for(j.id, j.attempt, database)) for j in jobs
        ]

    targets = await in_session(record)
    result = Cancellation()
    pool = await _servers(servers)

    # The waiting prompts leave every queue first, in one request a server: an interrupt
    # makes a server start the next prompt of its queue, and that could be one of these.
    prompt_ids = [prompt_id for _, prompt_id in targets]
    dequeued = await asyncio.gather(*(_dequeue(s, prompt_ids) for s in pool))

    async def everywhere(prompt_id: str) -> dict[str, str]:
        servers = list(zip(pool, dequeued, strict=True))
        withdrawn = dict(
            await asyncio.gather(
                *(_withdraw(s, prompt_id) for s, off in servers if prompt_id not in off)
            )
        )
        return {
            s.base_url: "dequeued" if prompt_id in off else withdrawn[s.base_url]
            for s, off in servers
        }

    outcomes = await asyncio.gather(*(everywhere(prompt_id) for prompt_id in prompt_ids))
    result.jobs = [
        CancelledJob(job_id, prompt_id, done)
        for (job_id, prompt_id), done in zip(targets, outcomes, strict=True)
    ]
    if end_runs and scene is None and cut is None:
        result.flow_runs = await _end_episode_runs(project, episode, reason)
    return result


async def _servers(extra: Sequence[str]) -> list[ComfyUIServer]:
    found = {server.base_url: server for _, server in await saved_servers()}
    for name in extra:
        try:
            server = await find_server(name)
        except Exception:  # noqa: BLE001 - a server the run named may be gone; the rest count
            continue
        found.setdefault(server.base_url, server)
    return list(found.values())


async def _dequeue(server: ComfyUIServer, prompt_ids: list[str]) -> set[str]:
    """Those of ``prompt_ids`` taken off the server's queue; none when it does not answer
    (each prompt's own withdrawal then reports the server unreachable)."""
    if not prompt_ids:
        return set()
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_S):
            return await server.get_client().dequeue(prompt_ids)
    except (TimeoutError, ComfyUIError):
        return set()


async def _withdraw(server: ComfyUIServer, prompt_id: str) -> tuple[str, str]:
    client = server.get_client()
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_S):
            outcome = await client.cancel(prompt_id)
            # ComfyUI stops an interrupted prompt at its next node step: wait for that,
            # so that "cancelled" means the server is free.
            while outcome == "interrupted" and (await client.lookup(prompt_id)).phase in (
                "running",
                "queued",
            ):
                await asyncio.sleep(0.05)
            return server.base_url, outcome
    except TimeoutError:
        return server.base_url, f"still running after {CANCEL_TIMEOUT_S:g} s"
    except ComfyUIError as exc:
        return server.base_url, f"unreachable ({type(exc).__name__})"


async def _end_episode_runs(project: str, episode: int, reason: str) -> dict[str, str]:
    """Set the episode's open render-episode flow runs Cancelling (the UI's Cancel) and wait,
    a while, for each to end; returns each run's state name."""
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["render-episode"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_RUN_STATES))
            ),
        )
        mine = [
            run
            for run in runs
            if run.parameters.get("project") == project
            and str(run.parameters.get("episode")) == str(episode)
        ]
        for run in mine:
            if run.state is None or run.state.type is not StateType.CANCELLING:
                await client.set_flow_run_state(run.id, Cancelling(message=reason), force=True)
        states: dict[str, str] = {}
        deadline = asyncio.get_running_loop().time() + END_RUN_TIMEOUT_S
        for run in mine:
            while True:
                state = (await client.read_flow_run(run.id)).state
                if state is None or state.is_final():
                    break
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            ended = state is not None and state.is_final()
            states[str(run.id)] = state.name if ended else "still cancelling"
        return states


async def ensure_not_cancelled(job_id: int, since: datetime | None = None) -> None:
    """Raise `ComfyUICancelled` for a job a person cancelled, or whose cut a cancellation made
    since ``since`` (its run's start) covers, or whose process its runner is stopping:
    checked before it is submitted."""
    # A served run's runner commits its intent (``cancel`` on a Cancel in the UI) to the
    # process, then sends SIGTERM, which Prefect raises in whichever coroutine runs then: one
    # render, say. The others go on until the flow ends, and one handed the stopped render's
    # slot would submit after the cancel: the run's own watch sees it up to
    # `WATCH_INTERVAL_S` later, and only then records it.
    if (intent := get_intent()) is not None:
        raise ComfyUICancelled(
            f"job {job_id} was not submitted: the runner is stopping this run ({intent})"
        )
    reason = await in_session(db_cancellations.job_cancelled_since, job_id, since)
    if reason is not None:
        raise ComfyUICancelled(f"job {job_id} was cancelled before it was submitted ({reason})")


@dataclass
class CancelWatch:
    """What a run learnt of its own cancel in Prefect (the UI's Cancel, `anime cancel`)."""

    reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None


@asynccontextmanager
async def cancel_on_request(
    flow_run_id: str | None, project: str, episode: int, servers: Sequence[str]
) -> AsyncIterator[CancelWatch]:
    """While inside, the run reads its own state; once it is Cancelling (or Cancelled) the
    episode's renders are cancelled (`cancel_renders`) and the watch says so: the flow then
    stops and ends Cancelled."""
    watch = CancelWatch()

    async def observe(flow_run_id: str) -> None:
        async with get_client() as client:
            while True:
                await asyncio.sleep(WATCH_INTERVAL_S)
                try:
                    state = (await client.read_flow_run(uuid.UUID(flow_run_id))).state
                except Exception as exc:  # noqa: BLE001 - a Prefect hiccup: look again
                    _log().debug("could not read the run's state: %s", exc)
                    continue
                if state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED):
                    break
        said = f": {state.message}" if state.message else ""
        # Said before the renders are cancelled: a phase that ends because of them must find
        # the run cancelled, not go on to its gate.
        watch.reason = f"the run was cancelled in Prefect{said}"
        await cancel_renders(project, episode, reason=watch.reason, servers=servers, end_runs=False)

    watcher = asyncio.create_task(observe(flow_run_id)) if flow_run_id else None
    try:
        yield watch
    except BaseException as exc:
        # Stopped (the runner's SIGTERM, Ctrl-C, an error past every job's own handler): a
        # job opened in the moment before its render's handler took over stays `running`
        # unless ended here. In this thread: an await could be cancelled again before it lands.
        _end_jobs_left_running(project, episode, exc)
        raise
    finally:
        if watcher is not None:
            await _stop_watching(watcher, watch)


async def _stop_watching(watcher: asyncio.Task, watch: CancelWatch) -> None:
    if watch.cancelled:  # the prompts are being withdrawn: let that finish
        try:
            await asyncio.shield(watcher)
        except Exception as exc:  # noqa: BLE001 - the run ends Cancelled whatever this says
            _log().error("cancelling the run's renders failed: %s", exc)
    else:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def _end_jobs_left_running(project: str, episode: int, exc: BaseException) -> None:
    from tasks.recovery import this_process

    why = "a cancel" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
    try:
        with session_scope() as session:
            ended = db_jobs.end_jobs_left_running(
                session, this_process(), project, episode, f"the run stopped ({why})"
            )
    except Exception as err:  # noqa: BLE001 - `anime doctor` ends them later; say so
        _log().error("jobs left running by the stopped run were not ended: %s", err)
        return
    if ended:
        _log().warning("ended jobs %s, left running by the stopped run", ended)


def _log():
    try:
        return get_run_logger()
    except MissingContextError:
        import logging

        return logging.getLogger(__name__)
