"""README "One machine with ComfyUI", step by step, as a newcomer types it: no Prefect server,
no PREFECT_API_URL, the real ComfyUI; every cut of the example episode rendered with the
`preview` template, its stored workflow the one ComfyUI's own history holds, its outputs
downloaded byte for byte."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from db.engine import session_scope
from db.models import Cut, Job
from db.vocabulary import JobStatus, Phase
from tests.conftest import EXAMPLE, REPO
from tests.real_comfyui.peer import RealComfyUI
from workflows import graph_sha256


def _anime(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "anime", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"anime {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.fixture
def data_dir():
    """The studio's data folder outside pytest's own (kept 0700 by every new pytest session
    on the machine), so the embedded PostgreSQL's system user can always reach it."""
    path = Path(tempfile.mkdtemp(prefix="anime-day-one-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(600)
def test_one_machine_from_nothing_to_a_rendered_episode(
    real_comfyui: RealComfyUI, db, tmp_path, data_dir
):
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "ANIME_DATA_DIR": str(data_dir),
        "ANIME_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    for setting in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(setting, None)

    _anime(env, "db", "upgrade")
    _anime(env, "import", str(EXAMPLE))
    added = _anime(env, "comfyui", "add", "local", real_comfyui.url, "--slots", "2")
    assert "ComfyUI server 'local'" in added and "2 slot(s)" in added
    listed = _anime(env, "comfyui", "list")
    assert f"local: {real_comfyui.url}  2 slot(s)  up, ComfyUI" in listed, listed
    assert "device cpu" in listed, listed
    rendered = _anime(
        env,
        "render",
        "moonlit-courier",
        "1",
        "--server",
        "local",
        "--template",
        "preview",
        "--until",
        "generation",
        timeout=420,
    )
    assert "generation: gate" in rendered, rendered
    # Nothing went to Prefect's SQLite under PREFECT_HOME, which no later command reads.
    assert not list((tmp_path / "prefect-home").rglob("*.db")), "Prefect used SQLite"

    with session_scope() as s:
        cuts = s.scalars(select(Cut)).all()
        jobs = s.scalars(select(Job).where(Job.phase == Phase.GENERATION)).all()
        assert len(cuts) == 8
        settled = (JobStatus.RENDERED, JobStatus.PASSED, JobStatus.FAILED, JobStatus.NEEDS_REVIEW)
        done = [j for j in jobs if j.status in settled]
        assert {j.cut_id for j in done} == {c.id for c in cuts}, [
            (j.cut_id, j.status, j.error) for j in jobs
        ]
        stored = [
            (j.comfyui_prompt_id, j.comfyui_server, j.params.template, j.params.workflow_sha256,
             sorted(a.sha256 for a in j.artifacts))
            for j in done
        ]
    with httpx.Client(base_url=real_comfyui.url, timeout=30) as http:
        for prompt_id, server, template, workflow_sha256, artifact_shas in stored:
            assert server == real_comfyui.url and template == "preview"  # cut 3.3 pins keyframe
            entry = http.get(f"/history/{prompt_id}").json()[prompt_id]
            assert graph_sha256(entry["prompt"][2]) == workflow_sha256
            on_server = sorted(
                hashlib.sha256(
                    http.get("/view", params={k: f[k] for k in ("filename", "subfolder", "type")})
                    .raise_for_status()
                    .content
                ).hexdigest()
                for output in entry["outputs"].values()
                for f in output.get("images", [])
            )
            assert artifact_shas and artifact_shas == on_server
    print(f"\nday one: {len(stored)} cuts rendered on {real_comfyui.url}, every one verified")

    # Step 5: `anime server` shows the run the render printed, its cut subflows Completed.
    (run_id,) = re.findall(r"flow run ([0-9a-f-]{36})", rendered)
    started = time.monotonic()
    runs = _runs_seen_by_anime_server(env, run_id, tmp_path / "server.log")
    print(f"day one: the run seen through `anime server` after {time.monotonic() - started:.1f} s")
    episode_run, cut_runs = runs
    assert episode_run["state"]["type"] == "COMPLETED", episode_run["state"]
    assert len(cut_runs) == 8 and {r["state"]["type"] for r in cut_runs} == {"COMPLETED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs_seen_by_anime_server(
    env: dict[str, str], run_id: str, log: Path
) -> tuple[dict, list[dict]]:
    """Start `anime server` as step 5 says, read the episode run and its cut subflows through
    its Prefect API, stop it."""
    port = _free_port()
    command = [sys.executable, "-m", "anime", "server", "--port", str(port)]
    command += ["--api-port", str(_free_port())]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        with httpx.Client(base_url=api, timeout=10) as http:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, f"anime server exited:\n{log.read_text()[-4000:]}"
                assert time.monotonic() < deadline, f"no Prefect API:\n{log.read_text()[-4000:]}"
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            episode_run = http.get(f"/flow_runs/{run_id}").raise_for_status().json()

            def children(parents: list[str]) -> list[dict]:
                found = {"flow_runs": {"parent_flow_run_id": {"any_": parents}}, "limit": 200}
                return http.post("/flow_runs/filter", json=found).raise_for_status().json()

            scenes = children([run_id])
            cuts = children([r["id"] for r in scenes]) if scenes else []
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, log.read_text()[-4000:]
        return episode_run, cuts
    finally:
        if server.poll() is None:
            server.kill()
