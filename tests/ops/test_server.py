"""`anime server` as people start it: a subprocess that answers /health with Prefect on
PostgreSQL behind it, serves the deployments (nightly runs get scheduled), takes
`anime deploy`, and stops cleanly on SIGTERM with no deployment left paused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.ops.conftest import free_port


def _wait_for(check, timeout_s: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-4000:]
            pytest.fail(f"anime server exited ({process.returncode}) before {what}:\n{tail}")
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"no {what} within {timeout_s:g} s:\n{log.read_text()[-4000:]}")


_ONE_TASK_FLOW = """
from prefect import flow, task, runtime

@task
def one_step():
    return 1

@flow
def one_task_flow():
    one_step()
    return runtime.flow_run.id

print(one_task_flow())
"""


def _prefect_deployments(api: str) -> list[dict]:
    return httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()


@pytest.mark.timeout(280)
def test_server_answers_health_serves_and_stops_cleanly(db, tmp_path, monkeypatch):
    from deployments.server import prefect_database

    data = tmp_path / "data"
    prefect_db = f"anime_ops_{uuid.uuid4().hex[:8]}"
    port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "ANIME_DATA_DIR": str(data),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "ANIME_NIGHTLY_TIMEZONE": "Europe/Paris",
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "anime", "server", "--port", str(port)]
    command += ["--api-port", str(api_port), "--prefect-database", prefect_db]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    prefect = f"http://127.0.0.1:{port}/api"
    try:
        health = _wait_for(
            lambda: (
                (r := httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)).status_code
                == 200
                and r.json()
            ),
            180,
            "healthy /health",
            server,
            log,
        )
        assert health["database"]["ok"] and health["prefect"]["ok"]
        assert health["prefect"]["url"] == prefect

        deployments = _wait_for(
            lambda: len(found := _prefect_deployments(prefect)) == 5 and found,
            60,
            "five deployments",
            server,
            log,
        )
        nightly = next(d for d in deployments if d["name"] == "nightly-render")
        assert nightly["schedules"][0]["schedule"]["timezone"] == "Europe/Paris"
        # Prefect's scheduler, running on the PostgreSQL database, plans the nightly runs
        scheduled = _wait_for(
            lambda: httpx.post(
                f"{prefect}/flow_runs/filter",
                json={"deployments": {"id": {"any_": [nightly["id"]]}}, "limit": 10},
                timeout=10,
            ).json(),
            60,
            "scheduled nightly runs",
            server,
            log,
        )
        assert {r["state_name"] for r in scheduled} == {"Scheduled"}

        deploy = subprocess.run(
            [sys.executable, "-m", "anime", "deploy"],
            env={**env, "PREFECT_API_URL": prefect},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert deploy.returncode == 0, deploy.stderr
        assert "created work pool 'anime-gpu' (process)" in deploy.stdout
        pool = httpx.get(f"{prefect}/work_pools/anime-gpu", timeout=10).json()
        assert pool["type"] == "process"
        on_pool = {d["name"]: d["work_pool_name"] for d in _prefect_deployments(prefect)}
        assert on_pool == dict.fromkeys(on_pool, "anime-gpu") and len(on_pool) == 5

        # Task runs reach the UI through the server's batched task-run recorder (flushed
        # every 2 s, not per event): a run's task is there, completed, moments after.
        ran = subprocess.run(
            [sys.executable, "-c", _ONE_TASK_FLOW],
            env={**env, "PREFECT_API_URL": prefect},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        flow_run_id = ran.stdout.split()[-1]
        task_runs = _wait_for(
            lambda: [
                t
                for t in httpx.post(
                    f"{prefect}/task_runs/filter",
                    json={"flow_runs": {"id": {"any_": [flow_run_id]}}},
                    timeout=10,
                ).json()
                if t["state_type"] == "COMPLETED"
            ],
            15,
            "the flow's completed task run",
            server,
            log,
        )
        assert [t["name"].split("-")[0] for t in task_runs] == ["one_step"]

        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, log.read_text()[-4000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = log.read_text()
    assert "SIGTERM received: stopping" in output and "stopped" in output.splitlines()
    with pytest.raises(httpx.HTTPError):  # the Prefect server went with it
        httpx.get(f"{prefect}/health", timeout=2)

    # Nothing was left paused: read Prefect's own database.
    import psycopg
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("ANIME_DATA_DIR", str(data))
    where = prefect_database(name=prefect_db)
    url = make_url(where.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        paused = dict(conn.execute("SELECT name, paused FROM deployment").fetchall())
    assert paused == dict.fromkeys(paused, False) and len(paused) == 5
    if where.keep_alive is None:  # a database next to the studio's: drop it
        admin = make_url(db).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')
    else:
        where.keep_alive.cleanup()
