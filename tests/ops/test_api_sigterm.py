"""`anime api` without PREFECT_API_URL starts Prefect's temporary server as a child process;
SIGTERM must stop that child with it, not leave it running as an orphan."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO
from tests.ops.conftest import free_port


def _children_once_started(api: subprocess.Popen, url: str, log: Path) -> list[psutil.Process]:
    """Ask /health (its ComfyUI check reads blocks, so Prefect starts its temporary server)
    until the API process has a child."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if api.poll() is not None:
            pytest.fail(f"anime api exited ({api.returncode}):\n{log.read_text()[-3000:]}")
        children = psutil.Process(api.pid).children(recursive=True)
        if children:
            return children
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=5)
        time.sleep(0.5)
    pytest.fail(f"Prefect's temporary server never started:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(200)
def test_sigterm_stops_the_temporary_prefect_server(db, tmp_path):
    env = {**os.environ, "DATABASE_URL": db, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    port = free_port()
    log = tmp_path / "api.log"
    command = [sys.executable, "-m", "anime", "api", "--port", str(port)]
    with log.open("wb") as out:
        api = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        children = _children_once_started(api, f"http://127.0.0.1:{port}/health", log)
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"left running after SIGTERM: {[p.cmdline() for p in alive]}"
        assert api.returncode == 128 + signal.SIGTERM
    finally:  # whatever failed, leave no process of ours behind
        for process in children:
            if process.is_running():
                process.kill()
        if api.poll() is None:
            api.kill()
