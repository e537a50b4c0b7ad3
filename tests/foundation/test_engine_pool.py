"""The process's database pool keeps the connections a burst of sessions opened: the next
burst reuses them instead of starting new PostgreSQL backends (a backend per cut step was
a large share of PostgreSQL's CPU in an episode)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from db.engine import POOL_SIZE, session_scope


def _burst(size: int) -> set[int]:
    """The backend process ids of `size` sessions open at the same time."""
    together = threading.Barrier(size)

    def one(_: int) -> int:
        with session_scope() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            together.wait(timeout=30)  # every session holds its connection at once
            return pid

    with ThreadPoolExecutor(size) as pool:
        return set(pool.map(one, range(size)))


def test_a_burst_of_sessions_keeps_its_connections_for_the_next(db):
    size = 8  # more than SQLAlchemy's default pool of 5
    assert size <= POOL_SIZE  # the pool keeps a burst of this size
    first = _burst(size)
    second = _burst(size)
    assert len(first) == size
    assert second == first  # no backend ended, none was started
