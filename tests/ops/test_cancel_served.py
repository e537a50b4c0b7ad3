"""Cancel, in the Prefect UI, an episode run that the served deployments execute (as under
`anime server`): the runner stops the run's process, and before it ends the prompts leave the
ComfyUI server, the jobs end cancelled, the slots are free and the run ends Cancelled."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import select, update

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from db.engine import session_scope
from db.models import Cut, Job, JobStatus
from deployments.trigger import wait_for_run
from tests.comfyui_server import ComfyUITestServer
from tests.ops.conftest import PROJECT, prefect_api, start_served_episode

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancel_in_the_ui_of_a_served_episode_run(
    served, production, offline_models, tmp_path
):
    with session_scope() as s:
        s.execute(update(Cut).values(template="preview", overrides={"width": 64, "height": 64}))
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=5.0, cache=False) as comfy:
        name = f"comfy-{uuid.uuid4().hex[:8]}"
        block = ComfyUIServer(base_url=comfy.url, slots=2, concurrency_limit_name=name)
        await block.save(name, overwrite=True)
        await ensure_concurrency_limits([block])
        parameters = {
            "project": PROJECT,
            "episode": 1,
            "until": "generation",
            "renderer": "comfyui",
            "comfyui_servers": [name],
            "attempt_budget": 1,
            "scoring_block": offline_models,
        }
        async with prefect_api() as api:
            run_id = await start_served_episode(api, served, parameters)
            while comfy.in_flight < 2:  # the run's process started and filled both slots
                state = (await api.get(f"/flow_runs/{run_id}")).json()["state"]
                assert state["type"] in ("SCHEDULED", "PENDING", "RUNNING"), state
                await asyncio.sleep(0.2)
            accepted = comfy.stats.prompts_accepted

            asked = time.monotonic()
            cancel = await api.post(  # what the UI's Cancel button sends
                f"/flow_runs/{run_id}/set_state",
                json={"state": {"type": "CANCELLING", "name": "Cancelling"}},
            )
            assert cancel.status_code in (200, 201), cancel.text
            while comfy.in_flight:
                await asyncio.sleep(0.02)
            off_server_s = time.monotonic() - asked
        finished = await wait_for_run(run_id, timeout_s=60)
        print(f"\nserved run: prompts off the server {off_server_s:.2f} s after the cancel")

        assert finished.state.name == "Cancelled", finished.state
        assert comfy.stats.prompts_accepted == accepted  # nothing submitted after the cancel
        assert not [
            p for p, entry in comfy.history().items() if entry["status"]["status_str"] == "success"
        ]
    with session_scope() as s:
        statuses = [j.status for j in s.scalars(select(Job))]
    assert statuses and set(statuses) == {JobStatus.CANCELLED}
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0
