"""Fixtures shared by the whole suite.

Database: every test session gets its own database on real PostgreSQL. With DATABASE_URL set
(e.g. Debian's PostgreSQL 15 started by `make test`), that server is used as the admin
connection; without it, an embedded server is started in a temporary data dir. The user's own
data dir is never touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# A console script run by a test runs in its own process and starts no resident process that
# would outlive the session (tests/ops/test_resident.py switches it on, in a folder of its own).
os.environ["ANIME_RESIDENT"] = "0"


def _isolate_model_caches() -> None:
    """Point the caches the studio reads models from at an empty folder of this session
    (all but InsightFace's ``~/.insightface``, which no variable moves: tests name their face
    pack by folder).

    A machine with the real models installed would otherwise have tests load them (ViT-L/14 to
    score the example's references on `anime import`) and write into the user's cache (the
    reference-score cache). Set before anything imports huggingface_hub or torch, which read
    these variables once; subprocesses inherit them. Tests that want a cache of their own still
    monkeypatch these per test.
    """
    cache = Path(tempfile.mkdtemp(prefix="anime-test-cache-"))
    os.environ["XDG_CACHE_HOME"] = str(cache)  # the studio's models folder: tower-anime/models
    os.environ["TORCH_HOME"] = str(cache / "torch")  # LPIPS's AlexNet, else read before XDG
    os.environ["HF_HOME"] = str(cache / "huggingface")  # CLIP from the hub cache
    os.environ["HF_HUB_CACHE"] = str(cache / "huggingface" / "hub")  # wins over a user's own
    atexit.register(shutil.rmtree, cache, ignore_errors=True)


_isolate_model_caches()

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "moonlit-courier" / "production.yaml"


def _admin_url() -> str:
    configured = os.environ.get("ANIME_TEST_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if configured:
        os.environ["ANIME_TEST_ADMIN_URL"] = configured
        return configured
    data = Path(tempfile.mkdtemp(prefix="anime-test-pg-", dir="/tmp"))
    os.environ["ANIME_DATA_DIR"] = str(data)
    from db.engine import _embedded_server_uri

    url = _embedded_server_uri()
    os.environ["ANIME_TEST_ADMIN_URL"] = url
    return url


class Databases:
    """Creates throw-away databases on the test server and points the app at one of them."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin = make_url(admin_url).set(drivername="postgresql")
        self.created: list[str] = []

    def _exec(self, sql: str) -> None:
        import psycopg

        conninfo = self.admin.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> str:
        name = f"anime_test_{uuid.uuid4().hex[:10]}"
        self._exec(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin.set(database=name).render_as_string(hide_password=False)

    def use(self, url: str) -> None:
        from db.engine import reset_caches

        os.environ["DATABASE_URL"] = url
        reset_caches()

    def drop_all(self) -> None:
        from db.engine import reset_caches

        reset_caches()
        for name in self.created:
            self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# End-to-end flow tests exercise orchestration, not the database engine: every query they use
# is covered by the database tests, so `make test` runs them once, on the embedded server.
ENGINE_NEUTRAL = ("tests/flows/", "tests/real_comfyui/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that touch the production database run again on Debian's PostgreSQL 15 (`make test`).
    for item in items:
        where = item.nodeid.replace("\\", "/")
        if "databases" in getattr(item, "fixturenames", ()) and not where.startswith(
            ENGINE_NEUTRAL
        ):
            item.add_marker(pytest.mark.database)


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    dbs = Databases(_admin_url())
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def migrated_url(databases: Databases) -> str:
    """One database at the newest schema, shared by the session (tables emptied per test)."""
    from db import migrate

    url = databases.create()
    databases.use(url)
    migrate.upgrade()
    return url


@pytest.fixture
def db(databases: Databases, migrated_url: str) -> Iterator[str]:
    """The migrated test database, emptied after the test. Yields its URL."""
    from sqlalchemy import text

    from db.engine import get_engine
    from db.models import Base

    databases.use(migrated_url)
    yield migrated_url
    databases.use(migrated_url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def session(db: str):
    from db.engine import session_scope

    with session_scope() as s:
        yield s


@pytest.fixture
def fresh_database(databases: Databases, migrated_url: str) -> Iterator[str]:
    """An empty database (no schema) the app points at for this test only."""
    url = databases.create()
    databases.use(url)
    yield url
    databases.use(migrated_url)


@pytest.fixture(scope="session")
def prefect_harness(databases: Databases):
    """One Prefect test server for the session, on PostgreSQL (see tests/prefect_server.py):
    request it by name."""
    from tests.prefect_server import prefect_test_server

    with prefect_test_server():
        yield
