"""How many cuts of one run render at once.

Cut subflows of one episode run in one event loop; a limiter in a context variable bounds
them together across scenes (total ComfyUI slots + 1, so scoring of one cut overlaps the
render of the next). Per-server slots across processes and machines are enforced separately,
by Prefect global concurrency limits in the ComfyUI pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

import anyio

_limiter: ContextVar[anyio.CapacityLimiter | None] = ContextVar("render_limiter", default=None)


def set_render_limit(slots: int) -> None:
    _limiter.set(anyio.CapacityLimiter(slots))


@asynccontextmanager
async def render_slot() -> AsyncIterator[None]:
    limiter = _limiter.get()
    if limiter is None:  # a cut run on its own
        yield
        return
    async with limiter:
        yield
