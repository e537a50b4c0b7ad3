"""The studio's benchmarks, end to end: `make bench` (quick) or `python -m bench --full`.

Sections (all by default; pick with --only):
  efficiency  an episode of N cuts on K ComfyUI test servers (T s per prompt, the servers'
              default two slots: one prompt running, one waiting in ComfyUI's queue):
              wall time against the ideal N*T/K, Prefect on PostgreSQL
  variants    the same with one slot per server (no prompt waits in ComfyUI's queue)
  overhead    T = 0 renders: per-cut overhead (median, p95) and its slope as N grows
  sqlite      one efficiency point on Prefect's default ephemeral SQLite server
  experiments further overhead cuts not shipped (bench/experiments.py), each alone at T = 0
              and both together: what each would gain
  database    `anime status` and the episode-scenes API on 300 cuts / 1,500 jobs / 9,000 scores
  scoring     bench/scoring.py: batched against per-pair scoring of a 120-frame 512x512 clip

Quick grid: N = 24, 96 x K = 1, 2 at T = 1 s, plus N = 300 on K = 4 at T = 2 s.
Full grid:  N = 24, 96, 300 x K = 1, 2, 4 at T = 2 s (about 25 minutes of ideal time alone).
Runs are repeated (--repeats; the SQLite run and single experiments once) round-robin over
the points so that a busy spell on this shared machine spreads over all of them; tables
quote medians. Everything runs under one temporary
folder in /tmp and is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.experiments import EXPERIMENTS
from bench.orchestration import Point, RunFailed, analyse, run_point
from bench.stack import REPO, BenchStack

SECTIONS = ("efficiency", "variants", "overhead", "sqlite", "experiments", "database", "scoring")


def _points(spec: str) -> list[Point]:
    """'N:K:T[:slots[:postgres|sqlite[:experiment+experiment]]],...'"""
    found = []
    for item in filter(None, spec.split(",")):
        parts = item.split(":")
        found.append(
            Point(
                cuts=int(parts[0]),
                servers=int(parts[1]),
                render_time_s=float(parts[2]),
                slots=int(parts[3]) if len(parts) > 3 and parts[3] else 2,
                prefect=parts[4] if len(parts) > 4 and parts[4] else "postgres",
                experiments=tuple(filter(None, parts[5].split("+"))) if len(parts) > 5 else (),
            )
        )
    return found


ALL_EXPERIMENTS = tuple(EXPERIMENTS)


def plan(full: bool) -> dict[str, list[Point]]:
    t = 2.0 if full else 1.0
    if full:
        efficiency = [Point(n, k, 2.0) for n in (24, 96, 300) for k in (1, 2, 4)]
    else:
        efficiency = [Point(n, k, 1.0) for n in (24, 96) for k in (1, 2)] + [Point(300, 4, 2.0)]
    variants = [Point(96, 2, t, slots=1), Point(300, 4, 2.0, slots=1)]
    sqlite = [Point(96, 2, t, prefect="sqlite")]
    overhead = [Point(n, 2, 0.0) for n in (24, 96, 300)]
    # Per-cut cost is flat in N (see overhead), so the experiments are compared at N = 48.
    experiments = [Point(48, 2, 0.0)]
    experiments += [Point(48, 2, 0.0, experiments=(name,)) for name in EXPERIMENTS]
    experiments += [Point(48, 2, 0.0, experiments=ALL_EXPERIMENTS)]
    return {
        "efficiency": efficiency,
        "variants": variants,
        "overhead": overhead,
        "sqlite": sqlite,
        "experiments": experiments,
    }


def repeats_for(point: Point, repeats: int) -> int:
    """Fewer repeats only where a run is indicative: the SQLite comparison and single-fix
    experiments once. Every timed point gets them all (medians of three are what
    docs/benchmarks.md quotes)."""
    if point.prefect == "sqlite" or len(point.experiments) == 1:
        return 1
    return repeats


def machine() -> dict[str, Any]:
    import platform

    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_at_start": os.getloadavg(),
        "speed_probe_ms": speed_probe_ms(),
    }


def speed_probe_ms(repeats: int = 7) -> float:
    """Milliseconds of one fixed pure-Python workload (parse, hash, sort), the median of
    `repeats`: this machine kind's speed moves from day to day (the same point measured
    150 and 440 ms of Prefect server per cut on two days), so figures are quoted with it and
    compared only with figures of a like probe."""
    import hashlib
    import json
    import statistics

    cuts = [{"cut": i, "label": f"E01S{i // 8:02d}C{i % 8:02d}"} for i in range(20000)]
    document = json.dumps(cuts)
    times = []
    for _ in range(repeats):
        started = time.process_time()
        rows = json.loads(document)
        rows.sort(key=lambda row: hashlib.sha256(row["label"].encode()).hexdigest())
        sum(len(str(row)) for row in rows)
        times.append(time.process_time() - started)
    return round(1000 * statistics.median(times), 2)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_orchestration(
    stack: BenchStack, sections: dict[str, list[Point]], repeats: int, deadline: float
) -> dict[str, list[dict[str, Any]]]:
    """Every point of every section, round-robin `repeats` times; analysed results."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sections}
    errors: list[str] = []
    failures: list[dict[str, Any]] = []
    index = 0
    for repeat in range(repeats):
        for name, points in sections.items():
            for point in points:
                if repeat >= repeats_for(point, repeats):
                    continue
                if time.monotonic() > deadline:
                    _log(f"time budget spent: skipping {name} {point.label} repeat {repeat + 1}")
                    continue
                load_before = os.getloadavg()
                _log(f"{name}: {point.label} (repeat {repeat + 1}/{repeats}), load {load_before}")
                try:
                    raw = run_point(stack, point, index)
                except RunFailed as exc:  # one failed run must not lose the others
                    failures.append({**exc.evidence, "load_before": load_before})
                    _log(f"FAILED {point.label}: {exc}")
                    continue
                except Exception as exc:
                    errors.append(f"{point.label}: {type(exc).__name__}: {exc}")
                    _log(f"FAILED {point.label}: {exc}")
                    continue
                finally:
                    index += 1
                analysed = analyse(raw)
                analysed["load_before"] = load_before
                analysed["load_after"] = os.getloadavg()
                analysed["repeat"] = repeat + 1
                results[name].append(analysed)
                _log(
                    f"  wall {analysed['wall_s']:.1f} s, ideal/wall {analysed['efficiency']:.3f}, "
                    f"overhead median {1000 * analysed['overhead_median_s']:.0f} ms, "
                    f"gap median {1000 * analysed['gap_median_s']:.0f} ms"
                )
                _log("  " + per_cut_line(analysed))
    if errors:
        results["errors"] = errors  # type: ignore[assignment]
    if failures:
        results["failures"] = failures
    return results


def per_cut_line(analysed: dict[str, Any]) -> str:
    """CPU ms and Prefect records per cut, one line: what each change moves."""
    cpu = {k: round(1000 * v) for k, v in analysed["cpu_per_cut_s"].items()}
    return (
        f"CPU ms/cut {cpu}; task runs/cut "
        f"{analysed['api_records_per_cut'].get('task_runs', float('nan')):.1f}, "
        f"logs/cut {analysed['logs_per_cut']:.1f}, events/cut "
        f"{report.per_cut(analysed, 'events'):.1f}, requests/cut: Prefect API "
        f"{report.requests(analysed, 'prefect'):.1f}, ComfyUI "
        f"{report.requests(analysed, 'comfyui'):.1f}, PostgreSQL sessions/cut "
        f"{analysed.get('postgres_sessions_per_cut', float('nan')):.2f}"
    )


def run_database(stack: BenchStack, cuts: int) -> dict[str, Any]:
    assert stack.postgres is not None
    name = stack.postgres.create_database()
    out = stack.folder("database") / "result.json"
    env = {
        **os.environ,
        "DATABASE_URL": stack.postgres.uri(name),
        "ANIME_DATA_DIR": str(stack.folder("database") / "data"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("PREFECT_API_URL", None)  # the domain API's routes here need no Prefect
    try:
        subprocess.run(
            [sys.executable, "-m", "bench.database", str(out), "--cuts", str(cuts)],
            cwd=REPO,
            env=env,
            check=True,
            timeout=600,
        )
        return json.loads(out.read_text())
    finally:
        stack.postgres.drop_database(name)


def run_scoring(quick: bool) -> str:
    command = [sys.executable, "-m", "bench.scoring"]
    if quick:
        command += ["--repeats", "3", "--budget", "10"]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    failed = f"\n(exit {done.returncode}) {done.stderr[-2000:]}" if done.returncode else ""
    return done.stdout + failed


def markdown(results: dict[str, Any]) -> str:
    out = [f"machine: {results['machine']}", ""]
    orchestration = results.get("orchestration", {})
    if orchestration.get("efficiency") or orchestration.get("variants"):
        out += ["## Orchestration efficiency", ""]
        out += [report.efficiency_table(orchestration.get("efficiency", [])), ""]
        out += [report.startup_table(orchestration.get("efficiency", [])), ""]
        if orchestration.get("variants"):
            out += ["One slot per server:", "", report.efficiency_table(orchestration["variants"])]
            out += [""]
    if orchestration.get("sqlite"):
        out += ["## Prefect on SQLite (ephemeral) vs PostgreSQL", ""]
        same = [
            r
            for r in orchestration.get("efficiency", [])
            if any(
                (r["cuts"], r["servers"], r["render_time_s"])
                == (s["cuts"], s["servers"], s["render_time_s"])
                for s in orchestration["sqlite"]
            )
        ]
        out += [report.efficiency_table(same + orchestration["sqlite"]), ""]
        out += [report.overhead_table(same + orchestration["sqlite"]), ""]
    if orchestration.get("overhead"):
        out += ["## Per-cut overhead (T = 0)", "", report.overhead_table(orchestration["overhead"])]
        out += ["", report.slope_lines(orchestration["overhead"]), ""]
        out += [report.task_table(orchestration["overhead"]), ""]
    if orchestration.get("overhead"):
        n96 = [r for r in orchestration["overhead"] if r["cuts"] == 96]
        if n96:
            out += ["What one cut costs (N=96 K=2 T=0):", "", report.traffic_table(n96, 30), ""]
    if orchestration.get("experiments"):
        zero = [r for r in orchestration["experiments"] if r["render_time_s"] == 0]
        base = [r for r in zero if not r["label"].count("+")]
        zero = [r for r in zero if r["label"].count("+")]
        timed = [r for r in orchestration["experiments"] if r["render_time_s"] > 0]
        out += ["## Further cuts, measured", "", report.experiments_table(base, zero), ""]
        if timed:
            out += [report.efficiency_table(timed), ""]
    if orchestration.get("efficiency"):
        out += ["## Prefect task durations in the efficiency runs", ""]
        out += [report.task_table(orchestration["efficiency"]), ""]
        out += [report.overhead_table(orchestration["efficiency"]), ""]
    if results.get("database"):
        db = results["database"]
        out += ["## Database", "", f"production: {db['production']}", ""]
        out += [report.database_table(db), ""]
    if results.get("scoring"):
        out += ["## Scoring throughput", "", "```", results["scoring"].rstrip(), "```", ""]
    if orchestration.get("failures"):
        out += ["## Runs that did not finish", ""]
        out += [
            report.table(
                ["run", "outcome", "after s", "prompts rendered", "last error"],
                [
                    [
                        f["label"],
                        f["outcome"],
                        f"{f['after_s']:.0f}",
                        f"{f['prompts_executed']} of {f['cuts']}",
                        f["error"].replace("|", "/"),
                    ]
                    for f in orchestration["failures"]
                ],
            ),
            "",
        ]
    if orchestration.get("errors"):
        out += ["## Errors", "", *(f"- {e}" for e in orchestration["errors"]), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the quick grid (default)")
    size.add_argument("--full", action="store_true", help="the full grid at T = 2 s")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (median quoted)")
    parser.add_argument(
        "--points",
        default=None,
        help="replace the efficiency points: N:K:T[:slots[:postgres|sqlite[:exp+exp]]],...",
    )
    parser.add_argument("--max-minutes", type=float, default=120.0, help="skip runs after this")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    args = parser.parse_args(argv)

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; sections are {list(SECTIONS)}")
    planned = plan(args.full)
    if args.points:
        planned["efficiency"] = _points(args.points)
    sections = {name: planned[name] for name in planned if name in only}
    deadline = time.monotonic() + 60 * args.max_minutes
    results: dict[str, Any] = {"machine": machine(), "args": vars(args) | {"json": str(args.json)}}
    results["args"]["markdown"] = str(args.markdown)

    if sections:
        with BenchStack() as stack:
            _log(f"Prefect server on PostgreSQL answered in {stack.prefect_startup_s:.1f} s")
            results["prefect_startup_s"] = stack.prefect_startup_s
            results["orchestration"] = run_orchestration(stack, sections, args.repeats, deadline)
            if "database" in only:
                _log("database")
                results["database"] = run_database(stack, 300)
    elif "database" in only:
        with BenchStack(prefect=False) as stack:
            _log("database")
            results["database"] = run_database(stack, 300)
    if "scoring" in only:
        _log("scoring (bench/scoring.py)")
        results["scoring"] = run_scoring(quick=not args.full)
    results["machine"]["load_at_end"] = os.getloadavg()
    results["machine"]["speed_probe_ms_at_end"] = speed_probe_ms()

    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
