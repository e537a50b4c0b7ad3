"""Orchestration efficiency and per-cut overhead: an N-cut episode on K ComfyUI test servers.

Each point is one episode run (`bench.episode_run`, in its own process) against a fresh
production database, a fresh ComfyUI farm (K servers, one prompt at a time, `render_time_s`
T per prompt, no cache) and the bench's Prefect server on PostgreSQL, or Prefect's ephemeral
SQLite server for the comparison. `analyse` turns the run's evidence into figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.stack import REPO, BenchStack, ComfyFarm, profiled, stop_group


@dataclass(frozen=True)
class Point:
    cuts: int
    servers: int
    render_time_s: float
    slots: int = 2  # the ComfyUIServer block's slots (prompts queued or running per server)
    prefect: str = "postgres"  # or "sqlite": Prefect's ephemeral server on SQLite
    experiments: tuple[str, ...] = ()  # bench.experiments: proposed fixes, tried in-process

    @property
    def ideal_s(self) -> float:
        return self.cuts * self.render_time_s / self.servers

    @property
    def label(self) -> str:
        extra = "" if self.slots == 2 else f" slots={self.slots}"
        extra += "" if self.prefect == "postgres" else f" {self.prefect}"
        extra += f" +{'+'.join(self.experiments)}" if self.experiments else ""
        return f"N={self.cuts} K={self.servers} T={self.render_time_s:g}{extra}"


class RunFailed(RuntimeError):
    """An episode run that crashed or ran out of time, with what it had done by then."""

    def __init__(self, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.evidence = evidence


def _last_error(log_text: str) -> str:
    lines = [line for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["(no output)"])[-1][:400]


def run_point(stack: BenchStack, point: Point, index: int) -> dict[str, Any]:
    """One episode run; returns the episode process's evidence plus the servers' timelines."""
    assert stack.postgres is not None
    run_dir = stack.folder(f"run-{index:03d}")
    database = stack.postgres.create_database()
    farm = ComfyFarm(run_dir / "farm", point.servers, point.render_time_s)
    log = run_dir / "episode.log"
    launched = time.time()
    try:
        urls = farm.start()
        spec = {
            "cuts": point.cuts,
            "servers": urls,
            "slots": point.slots,
            "render_time_s": point.render_time_s,
            "prefect_pids": stack.prefect.pids() if point.prefect == "postgres" else [],
            "postgres_pids": stack.postgres.pids(),
            "farm_pids": farm.pids(),
            "experiments": list(point.experiments),
        }
        (run_dir / "spec.json").write_text(json.dumps(spec))
        env = {
            **os.environ,
            "DATABASE_URL": stack.postgres.uri(database),
            "ANIME_DATA_DIR": str(run_dir / "data"),
            "ANIME_ARTIFACTS_DIR": str(run_dir / "artifacts"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(run_dir / "prefect-home"),
        }
        if point.prefect == "postgres":
            assert stack.prefect is not None
            env["PREFECT_API_URL"] = stack.prefect.api_url
        else:  # Prefect's default: an ephemeral server on SQLite under PREFECT_HOME
            env.pop("PREFECT_API_URL", None)
            env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
            env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
        # Bounded: set-up plus three times the ideal, plus slack for a loaded machine.
        timeout = 240 + 3 * point.ideal_s + 0.5 * point.cuts
        if point.prefect == "sqlite":  # far slower: let it finish, that is the finding
            timeout = 240 + 6 * point.ideal_s + 2 * point.cuts
        with log.open("wb") as out:
            # Its own session: on a timeout the whole group goes, Prefect's ephemeral server
            # (a child of the episode process on SQLite) included.
            episode = subprocess.Popen(
                profiled(
                    [sys.executable, "-m", "bench.episode_run", "spec.json", "result.json"],
                    f"episode-{index:03d}",
                ),
                cwd=run_dir,
                env={**env, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = episode.wait(timeout)
            except subprocess.TimeoutExpired:
                stop_group(episode, timeout_s=10)
                raise
            finally:
                stop_group(episode, timeout_s=10)  # anything it left behind in its group
            if code != 0:
                raise subprocess.CalledProcessError(code, episode.args)
        result = json.loads((run_dir / "result.json").read_text())
        result["farm"] = farm.dump()
        result["point"] = point.__dict__
        return result
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        text = log.read_text(errors="replace")
        try:
            servers = farm.dump()["servers"]
            executed = sum(s["stats"]["prompts_executed"] for s in servers)
        except Exception:  # the farm is evidence only
            executed = None
        evidence = {
            "label": point.label,
            "after_s": time.time() - launched,
            "prompts_executed": executed,
            "cuts": point.cuts,
            "outcome": "timed out" if isinstance(exc, subprocess.TimeoutExpired) else "crashed",
            "error": _last_error(text),
        }
        raise RunFailed(f"episode run {point.label}: {exc}\n{text[-3000:]}", evidence) from None
    finally:
        farm.stop()
        stack.postgres.drop_database(database)
        if keep := os.environ.get("ANIME_BENCH_KEEP"):  # a folder for the runs' logs
            Path(keep).mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(log, Path(keep) / f"episode-{index:03d}.log")
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- analysis


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    point = Point(**{**result["point"], "experiments": tuple(result["point"]["experiments"])})
    started, finished, wall = result["started"], result["finished"], result["wall_s"]
    servers = result["farm"]["servers"]
    prompts = {pid: p for s in servers for pid, p in s["prompts"].items()}

    # Server side: busy time, hand-over gaps, start-up and tail.
    busy, gaps, firsts, lasts = 0.0, [], [], []
    for server in servers:
        spans = sorted((p["start"], p["end"]) for p in server["prompts"].values())
        if not spans:
            continue
        busy += sum(end - start for start, end in spans)
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
        firsts.append(spans[0][0])
        lasts.append(spans[-1][1])
    executions = [p["end"] - p["start"] for p in prompts.values()]

    # Per cut, from the probes and the server timelines.
    prompt_of = {}
    for job in result["jobs"]:
        prompt_of.setdefault(job["cut_id"], []).append(job["prompt_id"])
    per_cut = []
    for c in result["cuts"]:
        run_s = c["returned"] - c["call"]
        limiter = sum(g - a for a, g in zip(c["slot_asked"], c["slot_got"], strict=False))
        pool = sum(
            s - e for e, s in zip(c["pool_entered"], c["pool_acquire_started"], strict=False)
        )
        execution = sum(
            prompts[p]["end"] - prompts[p]["start"]
            for p in prompt_of.get(c["cut_id"], [])
            if p in prompts
        )
        scoring = sum(end - start for start, end in c["score_spans"])
        held = sum(r - g for g, r in zip(c["slot_got"], c["slot_released"], strict=False))
        pre = (c["slot_asked"][0] - c["call"]) if c["slot_asked"] else float("nan")
        post = (c["returned"] - c["slot_released"][-1] - scoring) if c["slot_released"] else 0.0
        per_cut.append(
            {
                "cut_id": c["cut_id"],
                "run_s": run_s,
                "limiter_wait_s": limiter,
                "pool_wait_s": pool,
                "execution_s": execution,
                "scoring_s": scoring,
                "overhead_s": run_s - limiter - pool - execution - scoring,
                "before_render_s": pre,
                "render_path_s": held - pool - execution,
                "after_render_s": post,
            }
        )

    # Prefect's view: task durations per task name.
    by_task: dict[str, list[float]] = {}
    for t in result["task_runs"]:
        start, end = _ts(t["start"]), _ts(t["end"])
        if start is not None and end is not None:
            by_task.setdefault(t["task_key"].split("-")[0] or t["name"], []).append(end - start)
    cut_flow_spans = [
        _ts(f["end"]) - _ts(f["start"]) for f in result["flow_runs"] if f["start"] and f["end"]
    ]

    def col(name: str) -> list[float]:
        return [c[name] for c in per_cut]

    # Start-up, split: the episode's own set-up (flow run, plan, settings, references, the
    # first scene run), then the first cut's way to a held ComfyUI slot, then to execution.
    calls = [c["call"] for c in result["cuts"] if c["call"]]
    held = [t for c in result["cuts"] for t in c["pool_held"]]
    first_call = min(calls) - started if calls else float("nan")
    first_held = min(held) - started if held else float("nan")
    first_exec = (min(firsts) - started) if firsts else float("nan")
    cpu = result["cpu_s"]
    return {
        "label": point.label,
        "cuts": point.cuts,
        "servers": point.servers,
        "render_time_s": point.render_time_s,
        "slots": point.slots,
        "prefect": point.prefect,
        "gate": result["gate"],
        "prompts_executed": sum(s["stats"]["prompts_executed"] for s in servers),
        "max_concurrent": max(s["stats"]["max_concurrent"] for s in servers),
        "wall_s": wall,
        "ideal_s": point.ideal_s,
        "efficiency": point.ideal_s / wall,
        "execution_median_s": median(executions),
        "utilisation": busy / (point.servers * wall),
        "startup_s": first_exec,
        "startup_split_s": {
            "to_first_cut_call": first_call,
            "to_first_slot_held": first_held - first_call,
            "to_first_execution": first_exec - first_held,
        },
        "tail_s": (finished - max(lasts)) if lasts else float("nan"),
        "gap_median_s": median(gaps),
        "gap_p95_s": pct(gaps, 95),
        "gap_total_s": sum(gaps),
        "overhead_median_s": median(col("overhead_s")),
        "overhead_p95_s": pct(col("overhead_s"), 95),
        "before_render_median_s": median(col("before_render_s")),
        "render_path_median_s": median(col("render_path_s")),
        "render_path_p95_s": pct(col("render_path_s"), 95),
        "after_render_median_s": median(col("after_render_s")),
        "after_render_p95_s": pct(col("after_render_s"), 95),
        "limiter_wait_median_s": median(col("limiter_wait_s")),
        "pool_wait_median_s": median(col("pool_wait_s")),
        "scoring_median_s": median(col("scoring_s")),
        "cut_run_median_s": median(col("run_s")),
        "cut_flow_span_median_s": median(cut_flow_spans),
        "task_median_s": {k: median(v) for k, v in sorted(by_task.items())},
        "task_p95_s": {k: pct(v, 95) for k, v in sorted(by_task.items())},
        "api_records": result["api_records"],
        "api_records_per_cut": {k: v / point.cuts for k, v in result["api_records"].items()},
        "logs_per_cut": result["cut_flow_logs"] / point.cuts,
        "postgres_sessions_per_cut": result.get("postgres_sessions", float("nan")) / point.cuts,
        "cpu_s": cpu,
        "cpu_per_cut_s": {k: v / point.cuts for k, v in cpu.items()},
        "cpu_total_per_cut_s": sum(cpu.values()) / point.cuts,
        "per_cut_counts": {
            kind: {k: v / point.cuts for k, v in sorted(found.items(), key=lambda kv: -kv[1])}
            for kind, found in result.get("counters", {}).items()
        },
        "when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
    }
