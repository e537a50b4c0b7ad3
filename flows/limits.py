"""How many cuts of one run render at once, and how many cut runs are open at once.

Cut subflows of one episode run in one event loop; a limiter in a context variable bounds
them together across scenes (total ComfyUI slots + 1, so scoring of one cut overlaps the
render of the next). Per-server slots across processes and machines are enforced separately,
by Prefect global concurrency limits in the ComfyUI pool.

A second, wider limiter admits cut subflows: twice the render limit may be open at once (the
next cuts have their brief loaded and their job opened when a render slot frees), the rest
start as slots free up. At the start only as many as the render limit are admitted, widened
when the first cut holds a render slot, so that the first prompt is not queued behind the
creation of every admitted run. Scene subflows are admitted the same way: one at the start,
then as many at once as cuts.
Starting all of an episode's runs at once made each wait its turn with a live subflow: runs
created up front delayed the first render by seconds per hundred cuts and every later step
by the event loop's queue (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

import anyio

_limiter: ContextVar[anyio.CapacityLimiter | None] = ContextVar("render_limiter", default=None)
_admission: ContextVar[anyio.CapacityLimiter | None] = ContextVar("cut_admission", default=None)
_admission_full: ContextVar[int] = ContextVar("cut_admission_full", default=0)
_scenes: ContextVar[anyio.CapacityLimiter | None] = ContextVar("scene_admission", default=None)

ADMISSION_FACTOR = 2
T = TypeVar("T")


async def gather_or_stop(*runs: Awaitable[T]) -> list[T]:
    """Every run's result, in order; on the first error, the other runs are cancelled and
    waited for (they record their jobs stopped, none stays `running` after the flow ends),
    then that error is raised. Plain `asyncio.gather` would leave them running on."""
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def set_render_limit(slots: int) -> None:
    _limiter.set(anyio.CapacityLimiter(slots))
    # The first cuts are admitted alone: cut runs created together share the event loop and
    # the Prefect server, and the first prompt waited for all of them (5.4 s at K = 4). The
    # admission widens to its full size when the first cut holds a render slot.
    _admission.set(anyio.CapacityLimiter(slots))
    _admission_full.set(ADMISSION_FACTOR * slots)
    # Every open scene has a cut waiting or running, so as many scenes as admitted cuts
    # keep the cut admissions full whatever the scenes' sizes. At the start one scene alone:
    # its cuts' runs are created before the other scenes' runs, not after all of them (a
    # scene run is as many Prefect requests as a cut's). It widens with the cut admission.
    _scenes.set(anyio.CapacityLimiter(1))


@asynccontextmanager
async def _held(limiter: anyio.CapacityLimiter | None) -> AsyncIterator[None]:
    if limiter is None:  # a cut run on its own
        yield
        return
    async with limiter:
        yield


@asynccontextmanager
async def render_slot() -> AsyncIterator[None]:
    """Held while a cut renders (the run's share of ComfyUI slots, plus one)."""
    async with _held(_limiter.get()):
        full = _admission_full.get()
        for admission in (_admission.get(), _scenes.get()):
            if admission is not None and admission.total_tokens < full:
                admission.total_tokens = full
        yield


def cut_admission() -> AsyncIterator[None]:
    """Held for a whole cut subflow run, from before it is created until it returns."""
    return _held(_admission.get())


def scene_admission() -> AsyncIterator[None]:
    """Held for a whole scene subflow run, from before it is created until it returns."""
    return _held(_scenes.get())
