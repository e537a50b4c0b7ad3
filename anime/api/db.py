"""Database calls from async routes: one transaction each, on a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from db.engine import session_scope

T = TypeVar("T")


async def in_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    def run() -> T:
        with session_scope() as session:
            return fn(session, *args, **kwargs)

    return await anyio.to_thread.run_sync(run)
