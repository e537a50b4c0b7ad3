"""Cancelling an episode's renders: the prompts leave the server, the jobs end cancelled,
the slots are free, and the run goes on without rendering them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import select, update

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from db.engine import session_scope
from db.models import Cut, Job, JobRunStatus, JobStatus, Phase
from flows.episode import render_episode
from tasks.cancel import cancel_renders
from tests.comfyui_server import ComfyUITestServer


@pytest.fixture
def slow_comfy(tmp_path):
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=5.0, cache=False) as server:
        yield server


async def test_cancel_takes_an_episode_off_the_server_and_frees_its_slots(
    small_production, save_blocks, slow_comfy
):
    with session_scope() as s:
        s.execute(update(Cut).values(template="preview", overrides={"width": 64, "height": 64}))
    thresholds, models = await save_blocks(aesthetic=0.0)
    name = f"comfy-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url=slow_comfy.url, slots=2, concurrency_limit_name=name)
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])
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
        )
    )
    while slow_comfy.in_flight < 2:  # both slots' prompts are on the server
        assert not episode.done(), "the episode ended before it could be cancelled"
        await asyncio.sleep(0.05)

    cancelled = await cancel_renders(small_production, 1)
    assert slow_comfy.in_flight == 0  # interrupted and dequeued before cancel returned
    taken_off = [o for job in cancelled for o in job.outcomes.values()]
    assert len([o for o in taken_off if o in ("interrupted", "dequeued")]) == 2
    report = await episode

    # The jobs open when the cancel came end cancelled, never rendered; a cut that had not
    # started yet renders as usual.
    ids = {job.job_id for job in cancelled}
    statuses = [o.status for o in report.phases[0].cuts]
    assert len(ids) >= 2 and statuses.count("cancelled") == len(ids)
    with session_scope() as s:
        for job in s.scalars(select(Job).where(Job.id.in_(ids))):
            assert job.status is JobStatus.CANCELLED and not job.artifacts
            assert job.runs[-1].status is JobRunStatus.CANCELLED
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0
