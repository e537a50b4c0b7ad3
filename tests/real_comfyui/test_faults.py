"""kill -9 of a real ComfyUI in the middle of an episode: the run waits the outage out and
completes, every cut is stored once, and no prompt is executed twice (counted from the
server's own prompt ids and execution timestamps, watched while the episode runs)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import func, select, update

from blocks.comfyui import (
    ComfyUIServer,
    ensure_concurrency_limits,
    output_prefix,
    prompt_id_for,
    render_on,
)
from db.engine import session_scope
from db.models import Artifact, Cut, Job, JobRun, JobStatus, Phase, Project
from flows.episode import render_episode
from tests.flows import conftest as flow_fixtures
from tests.real_comfyui.peer import RealComfyUI
from workflows import canonical_json, render_template

# The flow tests' fixtures: a three-cut production, stand-in scoring models, saved blocks.
small_production = flow_fixtures.small_production
stand_in_models = flow_fixtures.stand_in_models
save_blocks = flow_fixtures.save_blocks


class Executions:
    """Every execution the server reports, by prompt id: the `execution_start` timestamps
    of its history entries, read every 0.2 s (a restart loses the history, so it is read
    while the server lives)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.starts: dict[str, set[int]] = defaultdict(set)
        self.running: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Executions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while not self._stop.wait(0.2):
                try:
                    history = http.get("/history").json()
                    queue = http.get("/queue").json()
                except (httpx.HTTPError, ValueError):
                    continue  # down: nothing to read
                for prompt_id, entry in history.items():
                    for kind, data in (entry.get("status") or {}).get("messages") or []:
                        if kind == "execution_start":
                            self.starts[prompt_id].add(int(data["timestamp"]))
                self.running = {item[1] for item in queue.get("queue_running") or []}

    @property
    def duplicates(self) -> dict[str, int]:
        return {p: len(s) for p, s in self.starts.items() if len(s) > 1}


async def test_kill_9_mid_episode_is_waited_out_and_renders_nothing_twice(
    own_comfyui: RealComfyUI, small_production, save_blocks
) -> None:
    with session_scope() as s:
        # 32 frames of 256x256: a few seconds a cut on a CPU, long enough to kill one midway.
        wanted = {"width": 256, "height": 256, "frames": 32}
        s.execute(update(Cut).values(template="preview", overrides=wanted))
        s.scalar(select(Project)).settings = {"default_template": "preview"}
    thresholds, models = await save_blocks(aesthetic=0.0)
    name = f"real-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(
        base_url=own_comfyui.url, slots=1, concurrency_limit_name=name, poll_interval_s=0.5
    )
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])

    with Executions(own_comfyui.url) as executions:
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
        # Kill it while a cut renders, after at least one finished.
        while not (executions.starts and executions.running - set(executions.starts)):
            assert not episode.done(), "the episode ended before the kill"
            await asyncio.sleep(0.1)
        killed = time.monotonic()
        own_comfyui.kill()
        await asyncio.to_thread(own_comfyui.start)
        restart_s = time.monotonic() - killed
        state = await episode

    assert state.is_completed(), state.message
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
        assert len(jobs) == 3 and all(j.status is not JobStatus.RUNNING for j in jobs)
        assert all(j.status in (JobStatus.PASSED, JobStatus.NEEDS_REVIEW) for j in jobs)
        # Every cut stored once: one job each, each output file once.
        uris = s.scalars(select(Artifact.uri)).all()
        assert len(uris) == len(set(uris)) and {a.job_id for a in s.scalars(select(Artifact))} == {
            j.id for j in jobs
        }
        outage_s = s.scalar(select(func.sum(JobRun.outage_s))) or 0.0
        job_runs = s.scalar(select(func.count()).select_from(JobRun))
        prompts = {j.comfyui_prompt_id for j in jobs}
    assert executions.duplicates == {}
    seen = set(executions.starts)
    print(
        f"\nkill -9 mid-episode: ComfyUI back after {restart_s:.1f} s, outage waited "
        f"{outage_s:.1f} s (summed over the jobs that waited), "
        f"{len(seen)} executions seen for {len(prompts)} prompts "
        f"({len(prompts - seen)} finished unseen between two reads), "
        f"{len(executions.duplicates)} duplicates, {job_runs} job runs for 3 jobs"
    )
    assert seen <= prompts  # nothing executed that no job asked for


async def test_a_prompt_finished_before_a_kill_9_is_found_by_name_not_rendered_again(
    own_comfyui: RealComfyUI, tmp_path: Path
) -> None:
    """The real server finishes a prompt and is killed before anyone reads its history: the
    next run finds the files under the prompt's prefix, checks the graph ComfyUI embedded in
    each, and downloads them; the restarted server executes nothing."""
    prompt_id = prompt_id_for(f"found-by-name-{uuid.uuid4().hex[:8]}", 1)
    prefix = output_prefix("anime/real/ep01-sc01-cut01-generation-a01", prompt_id)
    params = {"seed": 7, "width": 64, "height": 64, "frames": 3, "filename_prefix": prefix}
    graph = json.loads(canonical_json(render_template("preview", params)))
    block = ComfyUIServer(base_url=own_comfyui.url, poll_interval_s=0.2)
    first = await render_on(block, graph, prompt_id, tmp_path / "first")
    assert len(first.files) == 4  # three PNG frames and the animated WEBP

    own_comfyui.kill()
    await asyncio.to_thread(own_comfyui.start)
    again = await render_on(block, graph, prompt_id, tmp_path / "again")

    async with httpx.AsyncClient(base_url=own_comfyui.url) as http:
        history = (await http.get("/history")).json()
        queue = (await http.get("/queue")).json()
    executed = len(history) + len(queue["queue_running"]) + len(queue["queue_pending"])
    print(f"\nfound by name after kill -9: {len(again.files)} files, {executed} executions")
    assert again.recovered and executed == 0  # the server's own record since its restart
    def by_name(run) -> dict[str, str]:
        return {f.output.filename: f.sha256 for f in run.files}

    assert by_name(again) == by_name(first)  # the very files the first run downloaded
    assert set(by_name(again)) == {
        *(f"ep01-sc01-cut01-generation-a01-{prompt_id[:8]}_frame_{n:05}_.png" for n in (1, 2, 3)),
        f"ep01-sc01-cut01-generation-a01-{prompt_id[:8]}_clip_00001_.webp",
    }
