"""Cancelling an episode's renders, from the Prefect UI (its Cancel button sets the flow run
Cancelling) or with `anime cancel`: the prompts leave the server, the jobs end cancelled, the
slots are free, cuts not yet submitted never are, and the episode run ends Cancelled."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling
from sqlalchemy import func, select, update

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from db.engine import session_scope
from db.models import Cut, Job, JobRunStatus, JobStatus, Phase, ProcessHeartbeat, Scene
from flows.cut import render_cut
from flows.episode import render_episode
from tasks.cancel import cancel_renders
from tasks.planning import resolve_settings
from tasks.recovery import this_process
from tests.comfyui_server import ComfyUITestServer


@pytest.fixture
def slow_comfy(tmp_path):
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=5.0, cache=False) as server:
        yield server


async def _server_block(url: str, slots: int) -> str:
    name = f"comfy-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url=url, slots=slots, concurrency_limit_name=name)
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])
    return name


def _small_previews() -> None:
    with session_scope() as s:
        s.execute(update(Cut).values(template="preview", overrides={"width": 64, "height": 64}))


async def _one_slot_runs(comfy: ComfyUITestServer, save_blocks):
    """Small previews, and a start of a run rendering on `comfy` with one slot and one
    attempt: each call, the settings of a run started then."""
    _small_previews()
    thresholds, models = await save_blocks(aesthetic=0.0)
    name = await _server_block(comfy.url, slots=1)
    return functools.partial(resolve_settings, "comfyui", [name], 1, thresholds, models)


async def _episode_run_id(project: str, since: datetime) -> uuid.UUID:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["render-episode"])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
        )
    (run,) = [r for r in runs if r.parameters.get("project") == project]
    return run.id


async def _seconds_until_empty(comfy: ComfyUITestServer) -> float:
    """From now until the server holds no prompt: the figure printed (not asserted)."""
    asked = time.monotonic()
    while comfy.in_flight:
        await asyncio.sleep(0.02)
    return time.monotonic() - asked


@pytest.mark.parametrize("how", ["prefect-ui", "anime-cancel"])
async def test_cancelling_the_episode_run_takes_it_off_the_server_and_ends_it_cancelled(
    small_production, save_blocks, slow_comfy, how
):
    _small_previews()
    thresholds, models = await save_blocks(aesthetic=0.0)
    name = await _server_block(slow_comfy.url, slots=2)
    started = datetime.now(UTC)
    episode = asyncio.create_task(
        render_episode(
            small_production,
            1,
            until=Phase.GENERATION,
            renderer="comfyui",
            comfyui_servers=[name],
            attempt_budget=1,
            thresholds_block=thresholds,
            scoring_block=models,
            return_state=True,
        )
    )
    while slow_comfy.in_flight < 2:  # both slots' prompts are on the server, cut 3 waits
        assert not episode.done(), "the episode ended before it could be cancelled"
        await asyncio.sleep(0.05)
    run_id = await _episode_run_id(small_production, started)

    off_server = asyncio.create_task(_seconds_until_empty(slow_comfy))
    if how == "prefect-ui":
        async with get_client() as client:  # what the UI's Cancel button sends
            await client.set_flow_run_state(run_id, Cancelling(message="stop"))
    else:
        cancelled = await cancel_renders(small_production, 1)
        assert slow_comfy.in_flight == 0  # interrupted and dequeued before cancel returned
        assert cancelled.flow_runs == {str(run_id): "Cancelled"}
        assert len(cancelled.jobs) >= 2
    state = await episode
    off_server_s = await off_server
    print(f"\n{how}: prompts off the server {off_server_s:.2f} s after the cancel")

    # Two prompts were on the server (one running, one queued): neither rendered to the end,
    # and cut 3, waiting for a slot, was never submitted.
    assert slow_comfy.stats.prompts_accepted == 2
    assert slow_comfy.stats.interrupts == 1
    assert not [
        p for p, entry in slow_comfy.history().items() if entry["status"]["status_str"] == "success"
    ]
    assert state.type is StateType.CANCELLED
    report = await state.aresult(raise_on_failure=False)
    (phase,) = report.phases
    assert phase.decision == "cancelled"
    assert [o.status for o in phase.cuts] == ["cancelled"] * 3
    with session_scope() as s:
        jobs = list(s.scalars(select(Job)))
        assert len(jobs) >= 2  # cut 3's too, unless the cancel came before it opened one
        for job in jobs:
            assert job.status is JobStatus.CANCELLED and not job.artifacts
            said = "cancelled in Prefect: stop" if how == "prefect-ui" else "cancelled by a person"
            assert said in job.error, job.error
            assert job.runs[-1].status is JobRunStatus.CANCELLED
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0
        assert (await client.read_flow_run(run_id)).state.type is StateType.CANCELLED
        # What the UI lists under the run: its cut and scene subflows ended Cancelled too.
        for name, count in (("render-cut", 3), ("render-scene", None)):
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started)),
            )
            assert runs and {r.state.type for r in runs} == {StateType.CANCELLED}, name
            assert count is None or len(runs) == count
    # The process that took the jobs up beats: another machine can tell it lives.
    me = this_process()
    with session_scope() as s:
        assert s.get(ProcessHeartbeat, (me.host, me.pid, me.started or "")) is not None


async def test_a_cancelled_cut_without_a_job_is_not_submitted_by_a_run_under_way(
    small_production, save_blocks, tmp_path
):
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05) as comfy:
        start_run = await _one_slot_runs(comfy, save_blocks)
        under_way = await start_run()
        with session_scope() as s:
            cut_id = s.scalar(select(Cut.id).join(Scene).where(Scene.number == 1, Cut.number == 2))
        cancelled = await cancel_renders(small_production, 1, scene=1, cut=2)
        assert cancelled.jobs == [] and cancelled.flow_runs == {}  # nothing was open

        state = await render_cut(cut_id, Phase.GENERATION, under_way, return_state=True)
        assert state.type is StateType.CANCELLED  # as the Prefect UI shows the cut
        outcome = await state.aresult(raise_on_failure=False)
        assert outcome.status == "cancelled" and "cancelled by a person" in outcome.explanation
        assert comfy.stats.prompts_posted == 0
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 0

        # A run started after the cancel renders the cut as usual.
        later = await start_run()
        outcome = await render_cut(cut_id, Phase.GENERATION, later)
        assert outcome.status in ("approved", "needs_review")
        assert comfy.stats.prompts_executed == 1


async def test_a_render_handed_a_slot_after_the_runner_said_cancel_submits_nothing(
    small_production, save_blocks, tmp_path
):
    """A served run's runner commits its cancel to the process, then sends SIGTERM, which
    Prefect raises in one coroutine; the run's other renders go on until the flow ends. One
    that gets a slot meanwhile (the stopped render's) must not submit: its prompt would be
    left on the server, as it once was in CI (5 prompts accepted, 2 before the cancel)."""
    from prefect._internal import control_listener

    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05) as comfy:
        start_run = await _one_slot_runs(comfy, save_blocks)
        settings = await start_run()
        with session_scope() as s:
            cut_id = s.scalar(select(Cut.id).order_by(Cut.id).limit(1))
        control_listener._set_intent("cancel")  # as the runner's control channel commits it
        try:
            state = await render_cut(cut_id, Phase.GENERATION, settings, return_state=True)
        finally:
            control_listener.clear_intent()
        assert state.type is StateType.CANCELLED
        outcome = await state.aresult(raise_on_failure=False)
        assert "the runner is stopping this run (cancel)" in outcome.explanation
        assert comfy.stats.prompts_posted == 0
        with session_scope() as s:
            assert [j.status for j in s.scalars(select(Job))] == [JobStatus.CANCELLED]

        await render_cut(cut_id, Phase.GENERATION, settings)  # no stop: it renders
        assert comfy.stats.prompts_executed == 1


async def test_a_run_stopped_just_after_opening_a_job_leaves_nothing_running(production):
    """The runner's SIGTERM (a cancel in the UI of a served run) reaches the run as asyncio
    cancellation wherever it is: also in the moment after a job was marked running and before
    its render's own handler took over. The episode's stop ends that job cancelled."""
    from db.briefs import load_cut_brief
    from tasks.cancel import cancel_on_request
    from tasks.production import AttemptTarget, open_attempt

    with session_scope() as s:
        cut_id = s.scalar(select(Cut.id).order_by(Cut.id).limit(1))
        target = AttemptTarget.of_cut(load_cut_brief(s, cut_id), Phase.GENERATION)

    async def run_until_stopped() -> None:
        async with cancel_on_request(None, production, 1, []):
            await open_attempt(target, 1, "comfyui", None)
            await asyncio.sleep(60)  # where the runner's SIGTERM finds it

    run = asyncio.create_task(run_until_stopped())
    while not _jobs_with(JobStatus.RUNNING):
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    (job,) = _jobs_with(JobStatus.CANCELLED)
    assert job.error == "the run stopped (a cancel)"
    assert job.runs[-1].status is JobRunStatus.CANCELLED
    assert not _jobs_with(JobStatus.RUNNING)


def _jobs_with(status: JobStatus) -> list[Job]:
    with session_scope() as s:
        jobs = list(s.scalars(select(Job).where(Job.status == status)))
        for job in jobs:
            job.runs  # noqa: B018 - loaded before the session closes
        return jobs
