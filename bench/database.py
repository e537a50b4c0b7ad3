"""Database timings on a finished production: 300 cuts, 1,500 jobs, 9,000 scores.

    DATABASE_URL=postgresql://... python -m bench.database RESULT.json [--cuts 300] [--repeats 20]

Runs against an empty database (bench.stack makes one): migrates, imports the production,
bulk-inserts its history (bench.production.seed_history), then times
- `project_status` (the query path behind `anime status`), one session per call;
- `anime status <project>` end to end (a new Python process each time: imports included);
- `db.api_queries.episode_scenes`, the query of the episode-scenes route;
- `GET /api/anime/episodes/{id}/scenes` through the domain API on loopback (uvicorn).
Each timing is the median (and p95) of `--repeats` calls after one warm-up call.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _timings(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    fn()  # warm-up: connection pool, statement caches, imports
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    runs.sort()
    return {
        "median_s": statistics.median(runs),
        "p95_s": runs[min(len(runs) - 1, round(0.95 * len(runs)))],
        "min_s": runs[0],
        "runs": len(runs),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ApiServer:
    """The domain API (anime.api.app.create_app) on a loopback port, in a thread."""

    def __init__(self) -> None:
        import uvicorn

        from anime.api.app import create_app

        self.port = _free_port()
        config = uvicorn.Config(
            create_app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the domain API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("--cuts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cli-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import httpx
    from sqlalchemy import func, select

    from bench.production import build_production, seed_history
    from db import api_queries, migrate
    from db.engine import session_scope
    from db.models import Artifact, Job, QualityScore
    from db.queries import get_project, project_status

    migrate.upgrade()
    started = time.perf_counter()
    slug = build_production(args.cuts)
    imported_s = time.perf_counter() - started
    started = time.perf_counter()
    seeded = seed_history(slug)
    seeded_s = time.perf_counter() - started
    with session_scope() as session:
        counts = {
            "jobs": session.scalar(select(func.count()).select_from(Job)),
            "scores": session.scalar(select(func.count()).select_from(QualityScore)),
            "artifacts": session.scalar(select(func.count()).select_from(Artifact)),
        }
    episode_id = seeded["episode_id"]

    def status_query() -> None:
        with session_scope() as session:
            project_status(session, get_project(session, slug))

    def scenes_query() -> None:
        with session_scope() as session:
            api_queries.episode_scenes(session, episode_id)

    anime = Path(sys.executable).with_name("anime")

    def status_cli() -> None:
        # In its own process, as the breakdown below is; the resident process's figures are
        # bench/cli_startup.py's.
        env = {**os.environ, "ANIME_RESIDENT": "0"}
        subprocess.run([str(anime), "status", slug], check=True, capture_output=True, env=env)

    def python(code: str) -> Callable[[], None]:
        def run() -> None:
            subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))

        return run

    results: dict[str, Any] = {
        "production": {**seeded, **counts},
        "import_s": imported_s,
        "seed_s": seeded_s,
        "project_status": _timings(status_query, args.repeats),
        "episode_scenes_query": _timings(scenes_query, args.repeats),
        "anime_status_cli": _timings(status_cli, args.cli_repeats),
        # What the CLI's second goes on: interpreter, imports, the schema check's Alembic.
        "python_startup": _timings(python("pass"), args.cli_repeats),
        "import_cli": _timings(python("import anime.cli"), args.cli_repeats),
        "schema_check": _timings(
            python("from anime.cli.db import require_current_schema as r; r()"), args.cli_repeats
        ),
    }
    with _ApiServer() as api, httpx.Client(base_url=f"http://127.0.0.1:{api.port}") as http:
        url = f"/api/anime/episodes/{episode_id}/scenes"

        def get_scenes() -> None:
            response = http.get(url)
            response.raise_for_status()

        results["episode_scenes_api"] = _timings(get_scenes, args.repeats)
        body = http.get(url)
        results["episode_scenes_api"]["response_bytes"] = len(body.content)
    args.result.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
