"""One benchmarked episode run, in a process of its own (`bench.orchestration` starts it).

    python -m bench.episode_run SPEC.json RESULT.json

The spec names the cuts, the ComfyUI servers (already running), their slots and the render
time; the environment names the databases (DATABASE_URL) and the Prefect API (PREFECT_API_URL,
or none for Prefect's ephemeral SQLite server). Untimed set-up: migrate, import the production,
write stand-in scoring models, save the blocks, create the concurrency limits. Timed:
`render_episode(..., until="generation")` from call to return. Afterwards the result file gets
the wall time, each cut's probe timestamps (bench.probes), each job's prompt id and flow run,
the Prefect task runs of every cut, API record counts and CPU time per process group.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil


def _cpu_seconds(roots: list[int], include_self: bool = False) -> dict[int, float]:
    """CPU seconds of each process in the trees under `roots`: its own user + system time
    plus that of its children that exited and that it reaped (psutil's children_*). The
    second part counts the PostgreSQL backends that a pool's overflow connections start and
    end during the run: without it their CPU is lost, and the database looks cheapest
    exactly when its connections churn most."""
    found: dict[int, float] = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid == os.getpid() and not include_self:
                continue
            try:
                t = proc.cpu_times()
                found[proc.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
    return found


def _postgres_sessions() -> int:
    """Sessions (backends) started on the PostgreSQL server so far, every database."""
    from sqlalchemy import text

    from db.engine import session_scope

    with session_scope() as session:
        return int(session.execute(text("SELECT sum(sessions) FROM pg_stat_database")).scalar())


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """The CPU the trees used between the two readings. A process that exited between them
    is in its parent's children_* time now, with all of its life: its reading from before
    is taken off again, as it was spent before."""
    gone = sum(v for pid, v in before.items() if pid not in after)
    return sum(v - before.get(pid, 0.0) for pid, v in after.items()) - gone


async def _api(client: Any, path: str, body: dict[str, Any]) -> Any:
    response = await client._client.post(path, json=body)
    response.raise_for_status()
    return response.json()


async def _counts(client: Any) -> dict[str, int]:
    return {
        name: int(await _api(client, f"/{name}/count", {}))
        for name in ("flow_runs", "task_runs", "artifacts")
    }


async def _task_runs(client: Any, flow_run_ids: list[str]) -> list[dict[str, Any]]:
    """Task runs of the given flow runs (name, start, end), paged."""
    rows: list[dict[str, Any]] = []
    for i in range(0, len(flow_run_ids), 50):
        ids = flow_run_ids[i : i + 50]
        offset = 0
        while True:
            page = await _api(
                client,
                "/task_runs/filter",
                {
                    "flow_runs": {"id": {"any_": ids}},
                    "limit": 200,
                    "offset": offset,
                },
            )
            rows += [
                {
                    "flow_run_id": r["flow_run_id"],
                    "name": r["name"],
                    "task_key": r["task_key"],
                    "start": r["start_time"],
                    "end": r["end_time"],
                    "state": (r.get("state") or {}).get("type"),
                }
                for r in page
            ]
            if len(page) < 200:
                break
            offset += 200
    return rows


async def _flow_runs(client: Any, ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(0, len(ids), 200):
        page = await _api(
            client, "/flow_runs/filter", {"flow_runs": {"id": {"any_": ids[i : i + 200]}}}
        )
        rows += [
            {
                "id": r["id"],
                "name": r["name"],
                "created": r["created"],
                "start": r["start_time"],
                "end": r["end_time"],
                "state": (r.get("state") or {}).get("type"),
            }
            for r in page
        ]
    return rows


async def _log_count(client: Any, flow_run_ids: list[str]) -> int:
    total = 0
    for i in range(0, len(flow_run_ids), 100):
        offset = 0
        while True:
            page = await _api(
                client,
                "/logs/filter",
                {
                    "logs": {"flow_run_id": {"any_": flow_run_ids[i : i + 100]}},
                    "limit": 200,
                    "offset": offset,
                },
            )
            total += len(page)
            if len(page) < 200:
                break
            offset += 200
    return total


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    from bench import probes
    from bench.production import build_production
    from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
    from blocks.quality import MetricGate, QualityThresholds
    from db import migrate
    from db.engine import session_scope
    from db.models import Job
    from flows.episode import render_episode
    from tests.scoring.stand_in_models import write_stand_in_models

    # -- untimed set-up ------------------------------------------------------------------
    migrate.upgrade()
    project = build_production(spec["cuts"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = write_stand_in_models(Path(tempfile.mkdtemp(prefix="bench-models-")), seed=0)
    suffix = uuid.uuid4().hex[:8]
    thresholds = QualityThresholds(
        gates={"aesthetic": MetricGate(threshold=1.0)},
        required_metrics={
            "concept": [],
            "generation": ["aesthetic"],  # an empty list would judge nothing: could not judge
            "animation": [],
            "quality": [],
        },
    )
    await thresholds.save(f"bench-thresholds-{suffix}", overwrite=True)
    await models.save(f"bench-models-{suffix}", overwrite=True)
    names = []
    blocks = []
    for i, url in enumerate(spec["servers"]):
        name = f"bench-comfy-{suffix}-{i}"
        block = ComfyUIServer(base_url=url, slots=spec["slots"], concurrency_limit_name=name)
        await block.save(name, overwrite=True)
        names.append(name)
        blocks.append(block)
    await ensure_concurrency_limits(blocks)
    probes.install()
    from bench import experiments

    experiments.apply(spec.get("experiments", []), len(spec["servers"]) * spec["slots"])
    watch = {
        "prefect": spec.get("prefect_pids") or [],
        "postgres": spec.get("postgres_pids") or [],
        "comfyui": spec.get("farm_pids") or [],
    }
    if not watch["prefect"]:  # ephemeral server: a child of this process
        watch["prefect"] = [c.pid for c in psutil.Process().children(recursive=True)]

    async with get_client() as client:
        counts_before = await _counts(client)
    sessions_before = _postgres_sessions()
    cpu_before = {k: _cpu_seconds(v) for k, v in watch.items()}
    self_before = psutil.Process().cpu_times()

    counted_before = {k: v.copy() for k, v in probes.counters.items()}

    # -- timed ---------------------------------------------------------------------------
    print(f"{datetime.now():%H:%M:%S.%f}"[:-3] + " timed run starts")
    sys.stdout.flush()  # the kept log (ANIME_BENCH_KEEP) shows where the start-up goes
    started = time.time()
    report = await render_episode(
        project,
        1,
        until="generation",
        renderer="comfyui",
        comfyui_servers=names,
        attempt_budget=spec.get("attempt_budget", 3),
        thresholds_block=f"bench-thresholds-{suffix}",
        scoring_block=f"bench-models-{suffix}",
    )
    finished = time.time()
    counted = {k: dict(v - counted_before[k]) for k, v in probes.counters.items()}

    # -- evidence ------------------------------------------------------------------------
    self_after = psutil.Process().cpu_times()
    cpu_after = {k: _cpu_seconds(v) for k, v in watch.items()}
    cpu = {k: _cpu_delta(cpu_before[k], cpu_after[k]) for k in watch}
    cpu["episode_process"] = (self_after.user + self_after.system) - (
        self_before.user + self_before.system
    )
    phase = report.phases[0]
    with session_scope() as session:
        jobs = [
            {
                "job_id": j.id,
                "cut_id": j.cut_id,
                "attempt": j.attempt,
                "status": j.status.value,
                "prompt_id": j.comfyui_prompt_id,
                "server": j.comfyui_server,
                "flow_run_id": j.prefect_flow_run_id,
            }
            for j in session.query(Job).order_by(Job.id)
        ]
    flow_run_ids = sorted({j["flow_run_id"] for j in jobs if j["flow_run_id"]})
    async with get_client() as client:
        # Task runs reach the API as events, a little after the run: wait until they settle.
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            now = (await _counts(client))["task_runs"]
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since > 3:
                break
            await asyncio.sleep(0.5)
        counts_after = await _counts(client)
        # Read after the settling: a backend's start is counted once its stats flush. Both
        # readings go through the episode's pool, whose connections are kept: neither starts one.
        sessions = _postgres_sessions() - sessions_before
        task_runs = await _task_runs(client, flow_run_ids)
        flow_runs = await _flow_runs(client, flow_run_ids)
        logs = await _log_count(client, flow_run_ids)
    return {
        "spec": spec,
        "started": started,
        "finished": finished,
        "wall_s": finished - started,
        "gate": phase.decision,
        "pass_rate": phase.pass_rate,
        "cut_statuses": sorted({c.status for c in phase.cuts}),
        "cuts_reported": len(phase.cuts),
        "jobs": jobs,
        "cuts": [t.as_dict() for t in probes.records.values()],
        "task_runs": task_runs,
        "flow_runs": flow_runs,
        "api_records": {k: counts_after[k] - counts_before[k] for k in counts_after},
        "cut_flow_logs": logs,
        "cpu_s": cpu,
        "postgres_sessions": sessions,
        "counters": counted,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    result = asyncio.run(run(spec))
    Path(args[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
