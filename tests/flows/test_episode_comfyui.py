"""render_episode through the project's protocol-faithful ComfyUI test server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select, update

from blocks.comfyui import (
    ComfyUIServer,
    ComfyUIServerNotFound,
    ensure_concurrency_limits,
    prompt_id_for,
)
from db.engine import session_scope
from db.identity import database_id
from db.models import (
    Cut,
    GenerationParams,
    Job,
    JobRun,
    JobRunStatus,
    JobStatus,
    Phase,
    Project,
)
from flows.episode import render_episode
from flows.reproduce import reproduce_job
from tests.comfyui_server import ComfyUITestServer
from tests.conftest import REPO

# Cheap metrics only: LPIPS has its own end-to-end test on the animatic renderer.
PASSING = {"aesthetic": 1.0, "motion_smoothness": 0.5}


@pytest.fixture
def preview_production(production) -> str:
    """The example production rendered with the model-free `preview` template."""
    with session_scope() as s:
        s.execute(update(Cut).values(template="preview", overrides={"width": 128, "height": 128}))
        project = s.scalar(select(Project))
        project.settings = {"default_template": "preview", "animation_template": "preview"}
    return production


@pytest.fixture
def comfy(tmp_path):
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05, cache=False) as server:
        yield server


async def register(server: ComfyUITestServer, slots: int = 1) -> str:
    name = f"comfy-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url=server.url, slots=slots, concurrency_limit_name=name)
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])
    return name


async def test_episode_through_comfyui(preview_production, save_blocks, comfy):
    thresholds, models = await save_blocks(**PASSING)
    server_name = await register(comfy, slots=2)
    report = await render_episode(
        preview_production,
        1,
        renderer="comfyui",
        comfyui_servers=[server_name],
        thresholds_block=thresholds,
        scoring_block=models,
    )
    assert [p.decision for p in report.phases] == ["open", "open", "open"]
    assert comfy.stats.prompts_executed == 16  # 8 keyframes + 8 clips, each rendered once
    assert comfy.stats.max_concurrent <= 2
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
        assert {j.renderer for j in jobs} == {"comfyui"}
        assert all(j.comfyui_prompt_id and j.comfyui_server == comfy.url for j in jobs)
        # Derived from this database's identity: another database's job 1 has other ids.
        database = database_id(s)
        assert all(j.comfyui_prompt_id == prompt_id_for(j.id, j.attempt, database) for j in jobs)
        params = s.scalars(select(GenerationParams)).all()
        assert all(p.workflow and p.workflow_sha256 for p in params)
        assert all(p.environment.get("comfyui_version") for p in params)
        assert {p.seed for p in params} and len({p.seed for p in params}) == 16
        assert all(p.template == "preview" for p in params)
        # Each render's files are named after its cut, phase, attempt and prompt in the
        # server's output folder (so a prompt finished unseen is found there again).
        slug = s.scalar(select(Project)).slug
        for job in jobs:
            prefix = s.get(GenerationParams, job.id).workflow["4"]["inputs"]["filename_prefix"]
            assert prefix.startswith(f"anime/{slug}/E01S")  # the cut's label: E01S01C01
            tag = f"-{job.phase.value}-a{job.attempt:02d}-{job.comfyui_prompt_id[:8]}_frame"
            assert prefix.endswith(tag)
        # Per attempt: one run each, with the seconds of each stage measured.
        runs = s.scalars(select(JobRun)).all()
        assert len(runs) == 16 and {r.status for r in runs} == {JobRunStatus.RENDERED}
        for run in runs:
            assert None not in (run.queue_wait_s, run.execution_s, run.download_s, run.scoring_s)


async def test_reproduction_of_a_comfyui_job(preview_production, save_blocks, comfy):
    thresholds, models = await save_blocks(**PASSING)
    server_name = await register(comfy)
    await render_episode(
        preview_production,
        1,
        renderer="comfyui",
        comfyui_servers=[server_name],
        until=Phase.GENERATION,
        thresholds_block=thresholds,
        scoring_block=models,
    )
    with session_scope() as s:
        original = s.scalar(select(Job).order_by(Job.id).limit(1))
    executed = comfy.stats.prompts_executed
    report = await reproduce_job(original.id, comfyui_servers=[server_name])
    assert comfy.stats.prompts_executed == executed + 1  # really rendered again
    assert report.identical, report.summary()
    assert report.environment_differences == {}

    # No server named: the job's own, by its recorded URL.
    again = await reproduce_job(original.id)
    assert comfy.stats.prompts_executed == executed + 2 and again.identical
    with session_scope() as s:
        stored = s.get(GenerationParams, original.id)
        assert (stored.template, stored.template_version) == ("preview", "1")
        assert stored.positive_prompt == ""  # the preview graph has no prompt

    # A reproduction that cannot render leaves its job `error` with the reason, not running.
    with pytest.raises(ComfyUIServerNotFound):
        await reproduce_job(original.id, comfyui_servers=["no-such-server"])
    with session_scope() as s:
        failed = s.scalar(select(Job).order_by(Job.id.desc()).limit(1))
        assert failed.parent_job_id == original.id and failed.status == JobStatus.ERROR
        assert "no ComfyUI server named 'no-such-server'" in failed.error


def test_environment_comparison_ignores_free_memory():
    from tasks.reproduce import environment_differences

    def env(free: int, name: str = "cuda:0 NVIDIA H200", total: int = 150_000_000_000):
        device = {"name": name, "type": "cuda", "vram_total": total, "vram_free": free}
        return {"comfyui_version": "0.3.64", "devices": [{**device, "torch_vram_free": free}]}

    assert environment_differences(env(10**9), env(7 * 10**9)) == {}
    changed = environment_differences(env(10**9), env(10**9, name="cuda:0 NVIDIA L40S"))
    assert list(changed) == ["devices"]
    assert environment_differences(env(1, total=1), env(1, total=2)).keys() == {"devices"}


def _run_in_subprocess(project: str, server_name: str, thresholds: str, models: str, env: dict):
    code = (
        "import asyncio\n"
        "from flows.episode import render_episode\n"
        f"asyncio.run(render_episode({project!r}, 1, renderer='comfyui', "
        f"comfyui_servers=[{server_name!r}], until='generation', "
        f"thresholds_block={thresholds!r}, scoring_block={models!r}))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_killed_run_resumes_reattaches_and_duplicates_nothing(
    preview_production, save_blocks, tmp_path
):
    """Kill a run while a prompt renders on ComfyUI; the re-run re-attaches to that prompt
    (ComfyUI kept rendering it), renders the rest, and no job or render exists twice."""
    thresholds, models = await save_blocks(**PASSING)
    with ComfyUITestServer(tmp_path / "slow", render_time_s=1.5, cache=False) as slow:
        # Two slots: the killed process's lease holds one until Prefect expires it.
        server_name = await register(slow, slots=2)
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
        worker = _run_in_subprocess(preview_production, server_name, thresholds, models, env)
        deadline = time.monotonic() + 120
        while slow.stats.prompts_completed < 2 or slow.in_flight == 0:
            assert time.monotonic() < deadline, "the first run never got going"
            assert worker.poll() is None, "the first run ended on its own"
            await asyncio.sleep(0.05)
        worker.kill()
        worker.wait()
        assert slow.in_flight >= 1  # ComfyUI goes on rendering what the dead worker submitted
        with session_scope() as s:
            left_running = set(
                s.scalars(select(Job.id).where(Job.status == JobStatus.RUNNING)).all()
            )
        assert left_running
        async with get_client() as client:
            limit = await client.read_global_concurrency_limit_by_name(server_name)
        assert limit.active_slots >= 1  # the dead worker's lease, until the next run starts
        rerun_started = datetime.now(UTC)

        report = await render_episode(
            preview_production,
            1,
            renderer="comfyui",
            comfyui_servers=[server_name],
            until=Phase.GENERATION,
            thresholds_block=thresholds,
            scoring_block=models,
        )
        assert report.phases[0].decision == "open"
        # Every cut rendered exactly once over both runs: the in-flight prompts were
        # re-attached, not submitted again.
        assert slow.stats.prompts_executed == 8
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 8
        assert (
            s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.PASSED))
            == 8
        )
        # The jobs the killed run left running: crashed (with the reason) by the re-run,
        # then rendered by it, timed from its own start, not the dead run's.
        for job_id in left_running:
            job = s.get(Job, job_id)
            crashed, rendered = job.runs[-2], job.runs[-1]
            assert crashed.status is JobRunStatus.CRASHED and "died" in (crashed.error or "")
            assert rendered.status is JobRunStatus.RENDERED
            assert job.started_at >= rerun_started
        assert not s.scalars(select(JobRun).where(JobRun.status == JobRunStatus.RUNNING)).all()
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(server_name)
        assert limit.active_slots == 0
        dead_runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                )
            )
        )
        assert dead_runs == []  # the killed process's flow runs are Crashed, not RUNNING


async def test_the_first_prompts_go_out_while_the_references_embed_and_judges_wait_for_them(
    preview_production, save_blocks, comfy, monkeypatch
):
    """Embedding the characters' reference faces loads the face model (seconds): the run's
    first prompts do not wait for it, its judges (which compare with those faces) do."""
    from tasks import references

    embed = references.embed_project_references
    seen: dict[str, int] = {}

    def judged() -> int:
        with session_scope() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.verdict.is_not(None)))

    def slow_embedding(session, project_id, models):
        # Held until ComfyUI has rendered a prompt, then until a judge stored a verdict or
        # 3 s passed (a judge that did not wait stores one within that).
        deadline = time.monotonic() + 20
        while comfy.stats.prompts_executed == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["executed"] = comfy.stats.prompts_executed
        deadline = time.monotonic() + 3
        while not judged() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["judged"] = judged()
        return embed(session, project_id, models)

    monkeypatch.setattr(references, "embed_project_references", slow_embedding)
    thresholds, models = await save_blocks(**PASSING)
    report = await render_episode(
        preview_production,
        1,
        until=Phase.GENERATION,
        renderer="comfyui",
        comfyui_servers=[await register(comfy, slots=2)],
        thresholds_block=thresholds,
        scoring_block=models,
    )
    assert seen["executed"] >= 1, "no prompt rendered while the references were embedded"
    assert seen["judged"] == 0, "a cut was judged before the references were embedded"
    assert [p.decision for p in report.phases] == ["open"]
    assert judged() == 8
