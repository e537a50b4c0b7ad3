"""The deployments as Prefect holds them, and runs started through Prefect's own REST API,
executed by the served deployments the way `anime serve` executes them."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.sorting import FlowRunSort
from sqlalchemy import select

from db.engine import session_scope
from db.models import GateDecision, Job, JobStatus, Phase, PhaseGate
from deployments.trigger import wait_for_run
from tests.ops.conftest import (
    PROJECT,
    prefect_api,
    set_project_notifications,
    start_served_episode,
)
from tests.ops.test_api import api as domain_api

# The served runner lives on the session's event loop: these tests must run on it too.
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _runs_of(deployment_id: str) -> int:
    async with get_client() as client:
        return len(
            await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.ID_DESC,
                limit=200,
            )
        )


async def test_served_deployments_carry_strict_schemas_and_the_nightly_schedule(served):
    async with get_client() as client:
        for name, deployment_id in served.items():
            deployment = await client.read_deployment(uuid.UUID(deployment_id))
            assert deployment.enforce_parameter_schema, name
            assert deployment.parameter_openapi_schema["additionalProperties"] is False, name
            assert deployment.entrypoint.startswith("flows."), deployment.entrypoint
            assert not deployment.paused, name
        nightly = await client.read_deployment(uuid.UUID(served["nightly-render"]))
    (schedule,) = nightly.schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Asia/Tokyo"
    others = [n for n in served if n != "nightly-render"]
    async with get_client() as client:
        for name in others:
            assert not (await client.read_deployment(uuid.UUID(served[name]))).schedules


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"project": PROJECT, "episode": 1, "colour": "blue"}, "colour"),
        ({"project": PROJECT, "episode": "first"}, "episode"),
        ({"project": PROJECT, "episode": 1, "renderer": "pencil"}, "renderer"),
        ({"project": PROJECT, "episode": 1, "attempt_budget": 0}, "attempt_budget"),
        ({"episode": 1}, "project"),
    ],
)
async def test_rest_api_refuses_a_bad_parameter_before_a_run_exists(served, parameters, named):
    deployment_id = served["render-episode"]
    before = await _runs_of(deployment_id)
    async with prefect_api() as api:
        answer = await api.post(
            f"/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters}
        )
    assert answer.status_code == 409, answer.text
    assert named in answer.json()["detail"]
    assert await _runs_of(deployment_id) == before


async def test_render_and_reproduce_through_the_rest_api_with_notifications(
    served, production, offline_models, webhook, webhook_block
):
    """A real render-episode run (animatic renderer, example production) created by a plain
    HTTP request; the flow got the parameters sent; the closed gate was announced on the
    project's webhook; then a job is reproduced by the same path."""
    set_project_notifications([{"block": webhook_block, "on": ["gate_closed", "gate_open"]}])
    parameters = {
        "project": PROJECT,
        "episode": 1,
        "until": "generation",
        "renderer": "animatic",
        "attempt_budget": 1,
        "scoring_block": offline_models,
    }
    async with prefect_api() as api:
        run_id = await start_served_episode(api, served, parameters)

    finished = await wait_for_run(run_id, timeout_s=150)
    assert finished.state.name == "GateClosed", finished.state.message
    assert finished.parameters == parameters

    with session_scope() as s:
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
        gates = s.scalars(select(PhaseGate)).all()
        first_output = jobs[0].artifacts[0].sha256
    # until=generation: keyframes only; attempt_budget=1: one attempt per cut; animatic.
    assert len(jobs) == 8
    assert {(j.phase, j.attempt, j.renderer) for j in jobs} == {(Phase.GENERATION, 1, "animatic")}
    assert {j.status for j in jobs} == {JobStatus.NEEDS_REVIEW}  # models missing: for a person
    (gate,) = gates
    assert (gate.phase, gate.decision) == (Phase.GENERATION, GateDecision.CLOSED)
    assert gate.prefect_flow_run_id == run_id

    # the gate decision reached the webhook, with its explanation and the run's link
    assert webhook.arrived.wait(10)
    (notice,) = webhook.received  # needs_review is not routed to this webhook
    assert "generation gate CLOSED" in notice["subject"] and PROJECT in notice["subject"]
    assert gate.explanation.splitlines()[0] in notice["body"]
    assert f"/runs/flow-run/{run_id}" in notice["body"]

    # the domain API sees the same run: every cut waits for review, the gate is closed
    async with domain_api() as api:
        scenes = (await api.get(f"/api/anime/episodes/{gate.episode_id}/scenes")).json()
        started = await api.post(f"/api/anime/jobs/{jobs[0].id}/reproduce")
    cut_phases = [c["phases"] for scene in scenes["scenes"] for c in scene["cuts"]]
    assert [p["generation"]["status"] for p in cut_phases] == ["needs_review"] * 8
    assert all("animation" not in p for p in cut_phases)
    assert scenes["gates"]["generation"]["decision"] == "closed"

    # ... and reproduces a job through the reproduce-job deployment
    assert started.status_code == 202, started.text
    started = started.json()
    assert started["deployment"] == "reproduce-job/reproduce-job"
    assert started["ui_url"].endswith(f"/runs/flow-run/{started['flow_run_id']}")
    reproduced = await wait_for_run(started["flow_run_id"], timeout_s=120)
    assert reproduced.state.is_completed(), reproduced.state.message
    assert reproduced.parameters == {"job_id": jobs[0].id}
    with session_scope() as s:
        copy = s.scalar(select(Job).where(Job.parent_job_id == jobs[0].id))
        assert copy is not None and copy.artifacts[0].sha256 == first_output
        # What `anime reproduce --wait` prints after "Completed": whether it was identical.
        from db.api_queries import reproduction_outcome

        outcome = reproduction_outcome(s, started["flow_run_id"])
        assert outcome is not None and outcome.endswith("(animatic): identical output")


async def test_serving_creates_comfyui_limits_and_leaves_nothing_paused(prefect_harness):
    """At start-up each ComfyUI server block gets its global concurrency limit (= slots);
    when serving stops, the deployments stay unpaused (anime serve's default)."""
    from blocks.comfyui import ComfyUIServer
    from deployments.catalogue import ScheduleOverrides
    from deployments.serve import studio_runner

    block = f"gpu-{uuid.uuid4().hex[:6]}"
    server = ComfyUIServer(base_url=f"http://{block}.studio.invalid:8188", slots=3)
    await server.save(block)
    before = signal.getsignal(signal.SIGTERM)
    try:
        runner = await studio_runner(ScheduleOverrides(), poll_seconds=1, name="anime-check")
        async with get_client() as client:
            limit = await client.read_global_concurrency_limit_by_name(server.concurrency_limit)
        assert (limit.name, limit.limit) == (f"comfyui:{block}.studio.invalid:8188", 3)
        task = asyncio.create_task(runner.start())
        await asyncio.sleep(1.5)
        await runner.astop()
        await asyncio.wait_for(task, 30)
    finally:
        signal.signal(signal.SIGTERM, before)
        async with get_client() as client:
            document = await client.read_block_document_by_name(block, "anime-comfyui-server")
            await client.delete_block_document(document.id)
            await client.delete_global_concurrency_limit_by_name(server.concurrency_limit)
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("nightly-render/nightly-render")
    assert not deployment.paused
