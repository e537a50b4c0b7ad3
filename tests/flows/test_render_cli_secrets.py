"""The ComfyUI auth token, echoed back by a careless server, counted where it could land after
a real `anime render` (the CLI as a subprocess): its stdout and stderr, every table of the
studio database and every table of the Prefect server's database the run used (flow and task
runs' states, logs, events, artifacts). The goal, asserted: 0 everywhere.

Two runs: the server refuses every prompt (HTTP 400) echoing the token into the validation
message and details; then it accepts them and fails them, echoing it into the
`execution_error` message. Each check first finds the echo, redacted, where the token would
have been: a count of 0 in a place the echo never reached would prove nothing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import psycopg
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from tests.comfyui_server import ComfyUITestServer, ExecutionFault
from tests.conftest import REPO
from tests.flows.test_episode_comfyui import preview_production  # noqa: F401

TOKEN = "cli-t0ken-echoed-by-comfy"  # letters, digits and '-': the same in every text form
REFUSED = "for request with Authorization: ***"  # the 400 echo, redacted
FAILED = "licence expired (***)"  # the execution_error echo, redacted
INGEST_WAIT_S = 90.0  # the Prefect server records events a few seconds after they are sent


def occurrences(conninfo: str, needles: list[str]) -> dict[str, dict[str, int]]:
    """{table: {needle: occurrences}} over every table of the database, each row read whole
    as text (every column, text, JSON or other), counted by the server."""
    found: dict[str, dict[str, int]] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            counts = sql.SQL(", ").join(
                sql.SQL(
                    "coalesce(sum((length(r) - length(replace(r, {n}, ''))) / length({n})), 0)"
                ).format(n=sql.Literal(needle))
                for needle in needles
            )
            row = conn.execute(
                sql.SQL("SELECT {} FROM (SELECT t::text AS r FROM {} t) rows").format(
                    counts, sql.Identifier(schema, table)
                )
            ).fetchone()
            found[table] = {n: int(c) for n, c in zip(needles, row, strict=True) if c}
    return {table: counts for table, counts in found.items() if counts}


def total(found: dict[str, dict[str, int]], needle: str) -> int:
    return sum(counts.get(needle, 0) for counts in found.values())


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def anime_render(server_name: str, db_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_LOGGING_LEVEL": "INFO",  # what a studio runs with: every line Prefect keeps
    }
    args = ["render", "moonlit-courier", "1", "--renderer", "comfyui", "--server", server_name]
    return subprocess.run(
        [sys.executable, "-m", "anime", *args, "--until", "generation"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def prefect_has_recorded(conninfo: str) -> bool:
    """Both runs' failures are in Prefect's database: the flow runs' states, their events,
    and the echo in a log line and a task run's state."""
    found = occurrences(conninfo, [REFUSED, FAILED])
    places = {table for table, counts in found.items() if len(counts) == 2}
    return {"events", "log", "flow_run_state", "task_run_state"} <= places


async def test_an_echoed_token_is_nowhere_after_anime_render(
    preview_production,  # noqa: F811
    prefect_harness,
    db,
    tmp_path,
):
    name = f"echo-{uuid.uuid4().hex[:8]}"
    auth = ("Authorization", f"Bearer {TOKEN}")
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05, auth=auth) as comfy:
        block = ComfyUIServer(
            base_url=comfy.url, slots=1, concurrency_limit_name=name, auth_token=SecretStr(TOKEN)
        )
        await block.save(name, overwrite=True)
        await ensure_concurrency_limits([block])
        comfy.faults.echo_header = "Authorization"

        started = time.monotonic()
        comfy.faults.refuse_prompts = "licence server refused the request"
        refused = await asyncio.to_thread(anime_render, name, db)
        comfy.faults.refuse_prompts = None
        comfy.faults.execution_error = ExecutionFault(message="licence expired")
        between = time.monotonic()
        failed = await asyncio.to_thread(anime_render, name, db)
        posted = comfy.stats.prompts_posted
    ran = (between - started, time.monotonic() - between)

    prefect_db = plain(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    waited = time.monotonic()
    while not prefect_has_recorded(prefect_db) and time.monotonic() - waited < INGEST_WAIT_S:
        await asyncio.sleep(1.0)
    settled = time.monotonic() - waited
    studio = occurrences(plain(db), [TOKEN, "***"])
    prefect = occurrences(prefect_db, [TOKEN, REFUSED, FAILED])
    output = [run.stdout + run.stderr for run in (refused, failed)]

    counts = {
        "cli output": sum(text.count(TOKEN) for text in output),
        "studio database": total(studio, TOKEN),
        "prefect database": total(prefect, TOKEN),
    }
    print(f"\nanime render: {ran[0]:.1f} s (400), {ran[1]:.1f} s (execution_error) to fail; "
          f"Prefect's database had recorded it {settled:.1f} s later")
    print(f"secret occurrences after {posted} prompts posted: {counts}")
    print(f"studio database, echoes redacted: { {t: c.get('***', 0) for t, c in studio.items()} }")
    print(f"prefect database, echoes redacted: { {t: c for t, c in prefect.items()} }")

    # Both runs failed on the server's answer, which carried the token, redacted.
    assert refused.returncode == 1 and failed.returncode == 1, output
    assert REFUSED in output[0] and FAILED in output[1], output
    assert total(studio, "***") > 0 and prefect_has_recorded(prefect_db), prefect
    assert counts == {"cli output": 0, "studio database": 0, "prefect database": 0}, (
        studio,
        prefect,
    )
