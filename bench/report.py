"""Tables for docs/benchmarks.md: medians over repeated runs, ratios, slopes."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any


def med(values: Iterable[float]) -> float:
    found = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(found) if found else float("nan")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of y on x (NaN with fewer than two distinct x)."""
    if len(set(xs)) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{1000 * value:.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def group(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        found.setdefault(run["label"], []).append(run)
    return found


def efficiency_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for label, rs in group(runs).items():
        effs = [r["efficiency"] for r in rs]
        spread = f" ({_f(min(effs))}-{_f(max(effs))})" if len(rs) > 1 else ""
        gap = med(r["gap_median_s"] for r in rs)
        gap95 = med(r["gap_p95_s"] for r in rs)
        rows.append(
            [
                label,
                str(len(rs)),
                _f(rs[0]["ideal_s"], 1),
                _f(med(r["wall_s"] for r in rs), 1),
                f"**{_f(med(effs))}**" + spread,
                _f(med(r["utilisation"] for r in rs)),
                _f(med(r["execution_median_s"] for r in rs)),
                _f(med(r["startup_s"] for r in rs)),
                f"{_ms(gap)} / {_ms(gap95)}",
                _f(med(r["tail_s"] for r in rs)),
                _f(med(r["cpu_total_per_cut_s"] for r in rs)),
                _f(med(r["load_before"][0] for r in rs)),
            ]
        )
    return table(
        [
            "point",
            "runs",
            "ideal N*T/K s",
            "wall s",
            "ideal / wall",
            "server busy share",
            "prompt exec s",
            "start-up s",
            "hand-over gap ms (median / p95)",
            "tail s",
            "CPU s per cut",
            "load (1 min) before",
        ],
        rows,
    )


def overhead_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for label, rs in group(runs).items():
        cpu = {k: med(r["cpu_per_cut_s"][k] for r in rs) for k in rs[0]["cpu_per_cut_s"]}
        rows.append(
            [
                label,
                str(len(rs)),
                _ms(med(r["overhead_median_s"] for r in rs)),
                _ms(med(r["overhead_p95_s"] for r in rs)),
                _ms(med(r["before_render_median_s"] for r in rs)),
                _ms(med(r["render_path_median_s"] for r in rs)),
                _ms(med(r["after_render_median_s"] for r in rs)),
                _ms(med(r["wall_s"] / r["cuts"] for r in rs)),
                " / ".join(
                    _ms(cpu[k]) for k in ("episode_process", "prefect", "postgres", "comfyui")
                ),
                _ms(med(_orchestrator_cpu(r) for r in rs)),
                _f(med(requests(r, "prefect") for r in rs), 1),
                _f(med(per_cut(r, "events") for r in rs), 1),
                _f(med(r["api_records_per_cut"]["task_runs"] for r in rs), 1),
                _f(med(r["logs_per_cut"] for r in rs), 1),
                _f(med(r.get("postgres_sessions_per_cut", float("nan")) for r in rs), 2),
            ]
        )
    return table(
        [
            "point",
            "runs",
            "overhead ms median",
            "p95",
            "before render (median)",
            "render path",
            "after render",
            "wall per cut ms",
            "CPU ms per cut: flow process / Prefect server / PostgreSQL / ComfyUI",
            "orchestrator CPU ms per cut (flow + Prefect + PostgreSQL)",
            "Prefect API requests per cut",
            "Prefect events per cut",
            "task runs per cut",
            "log lines per cut",
            "PostgreSQL sessions started per cut",
        ],
        rows,
    )


def _orchestrator_cpu(run: dict[str, Any]) -> float:
    """The orchestrator's CPU per cut: the episode process, the Prefect server and PostgreSQL
    (the ComfyUI test servers stand in for GPU hosts and are left out)."""
    cpu = run["cpu_per_cut_s"]
    return sum(cpu.get(k, 0.0) for k in ("episode_process", "prefect", "postgres"))


def slope_lines(runs: list[dict[str, Any]]) -> str:
    grouped = group(runs)
    xs, med_ys, p95_ys, cpu_ys = [], [], [], []
    for rs in grouped.values():
        xs.append(rs[0]["cuts"])
        med_ys.append(med(r["overhead_median_s"] for r in rs))
        p95_ys.append(med(r["overhead_p95_s"] for r in rs))
        cpu_ys.append(med(r["cpu_total_per_cut_s"] for r in rs))
    return (
        f"slope per 100 more cuts: overhead median {_ms(100 * slope(xs, med_ys))} ms, "
        f"p95 {_ms(100 * slope(xs, p95_ys))} ms, CPU per cut {_ms(100 * slope(xs, cpu_ys))} ms"
    )


def task_table(runs: list[dict[str, Any]]) -> str:
    names = sorted({k for r in runs for k in r["task_median_s"]})
    rows = []
    for label, rs in group(runs).items():
        rows.append(
            [label]
            + [
                f"{_ms(med(r['task_median_s'].get(n, float('nan')) for r in rs))} / "
                f"{_ms(med(r['task_p95_s'].get(n, float('nan')) for r in rs))}"
                for n in names
            ]
        )
    return table(["point", *(f"{n} ms (median / p95)" for n in names)], rows)


def database_table(result: dict[str, Any]) -> str:
    names = {
        "project_status": "`project_status` (query path of `anime status`)",
        "anime_status_cli": "`anime status <project>` end to end (new process)",
        "python_startup": "new process: bare `python -c pass`",
        "import_cli": "new process: `import anime.cli`",
        "schema_check": "new process: `require_current_schema()` (imports included)",
        "episode_scenes_query": "`api_queries.episode_scenes` (query)",
        "episode_scenes_api": "`GET /api/anime/episodes/{id}/scenes` on loopback",
    }
    rows = [
        [label, str(result[key]["runs"]), _ms(result[key]["median_s"]), _ms(result[key]["p95_s"])]
        for key, label in names.items()
        if key in result
    ]
    return table(["operation", "runs", "median ms", "p95 ms"], rows)


def per_cut(run: dict[str, Any], kind: str, prefix: str = "") -> float:
    return sum(v for k, v in run["per_cut_counts"].get(kind, {}).items() if k.startswith(prefix))


def requests(run: dict[str, Any], target: str) -> float:
    found = run["per_cut_counts"].get("requests", {})
    return sum(v for k, v in found.items() if k.split(" ")[1:2] == [target])


def experiments_table(baseline: list[dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    """CPU per cut and API traffic per cut of each proposed fix, against the baseline runs."""
    base = med(r["cpu_total_per_cut_s"] for r in baseline)
    base_label = baseline[0]["label"] if baseline else None
    rows = []
    for label, rs in group(baseline + runs).items():
        total = med(r["cpu_total_per_cut_s"] for r in rs)
        cpu = {k: med(r["cpu_per_cut_s"][k] for r in rs) for k in rs[0]["cpu_per_cut_s"]}
        same = label == base_label or math.isnan(base)
        change = "-" if same else f"{100 * (total / base - 1):+.0f}%"
        rows.append(
            [
                label,
                str(len(rs)),
                " / ".join(_ms(cpu[k]) for k in ("episode_process", "prefect", "postgres")),
                _ms(total),
                change,
                _ms(med(r["overhead_median_s"] for r in rs)),
                _f(med(requests(r, "prefect") for r in rs), 1),
                _f(med(requests(r, "comfyui") for r in rs), 1),
                _f(med(per_cut(r, "events") for r in rs), 1),
                _f(med(per_cut(r, "clients") for r in rs), 1),
            ]
        )
    return table(
        [
            "run",
            "runs",
            "CPU ms per cut: flow / Prefect server / PostgreSQL",
            "all processes",
            "vs baseline",
            "overhead ms (median)",
            "Prefect API requests per cut",
            "ComfyUI requests per cut",
            "Prefect events per cut",
            "httpx clients per cut",
        ],
        rows,
    )


def traffic_table(runs: list[dict[str, Any]], top: int = 20) -> str:
    """What one cut costs in requests and events (median over runs of one point)."""
    counts: dict[str, list[float]] = {}
    for r in runs:
        for kind in ("requests", "events", "clients"):
            for name, value in r["per_cut_counts"].get(kind, {}).items():
                key = name if kind != "clients" else f"httpx.AsyncClient created ({name})"
                counts.setdefault(key, []).append(value)
    ordered = sorted(counts.items(), key=lambda kv: -med(kv[1]))[:top]
    return table(["request / event per cut", "count"], [[k, _f(med(v), 2)] for k, v in ordered])


def startup_table(runs: list[dict[str, Any]]) -> str:
    """Where the time before the first execution goes (medians over the runs of a point)."""
    parts = ("to_first_cut_call", "to_first_slot_held", "to_first_execution")
    rows = []
    for label, rs in group(runs).items():
        split = [r.get("startup_split_s") or {} for r in rs]
        rows.append(
            [label, _f(med(r["startup_s"] for r in rs))]
            + [_f(med(s.get(p, float("nan")) for s in split)) for p in parts]
        )
    return table(
        [
            "point",
            "start-up s",
            "episode set-up: call to first cut run",
            "first cut: run to ComfyUI slot held",
            "slot held to execution start",
        ],
        rows,
    )
