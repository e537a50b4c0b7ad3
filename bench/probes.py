"""Timestamps on a cut's path, taken by wrappers that call the real code and only note times.

Installed in the benchmarked process before the episode runs (`install()`); each cut's record
is found through a context variable set when `render_scene` calls `render_cut`, which Prefect's
async subflows and tasks (same event loop) and anyio's worker threads inherit.

What each wrapper marks (epoch seconds, the clock the ComfyUI servers stamp history with):
- `flows.scene.render_cut`: call and return of the cut subflow, as its scene sees them.
- `flows.cut.render_slot`: asked for / got / gave back the run's render slot (the limiter of
  total ComfyUI slots + 1): the wait in between is capacity, not overhead.
- `ComfyUIPool.slot` and `ComfyUIPool._acquire_one`: entering the pool, the start of the
  acquisition that succeeded (polls before it that found no free slot are waiting; a slot
  handed over by the render before is held at once), and the moment the slot is held.
- `tasks.judging._score_cut`: the scoring itself (model forward passes), in its worker thread.

Counters (whole run): HTTP requests by target (Prefect API or ComfyUI), method and path
template, `httpx.AsyncClient`s created (each loads the CA bundle: ~20 ms of CPU here), and
Prefect events emitted by name.
"""

from __future__ import annotations

import collections
import contextlib
import re
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CutTimes:
    cut_id: int
    call: float = 0.0
    returned: float = 0.0
    slot_asked: list[float] = field(default_factory=list)
    slot_got: list[float] = field(default_factory=list)
    slot_released: list[float] = field(default_factory=list)
    pool_entered: list[float] = field(default_factory=list)
    pool_acquire_started: list[float] = field(default_factory=list)
    pool_held: list[float] = field(default_factory=list)
    score_spans: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_current: ContextVar[CutTimes | None] = ContextVar("bench_cut_times", default=None)
records: dict[int, CutTimes] = {}
counters: dict[str, collections.Counter[str]] = {
    "requests": collections.Counter(),
    "clients": collections.Counter(),
    "events": collections.Counter(),
}
_installed = False
_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f-]{27,}|/\d+(?=/|$)")
_NAMED = re.compile(
    r"(/block_documents/name/)[^/]+|(/v2/concurrency_limits/)(?!increment|decrement|filter)[^/]+$"
)


def _route(url: Any, prefect_api: str) -> str:
    target = "prefect" if str(url).startswith(prefect_api) else "comfyui"
    path = url.path.removeprefix("/api") if target == "prefect" else url.path
    path = _NAMED.sub(lambda m: (m.group(1) or m.group(2)) + "{name}", _ID.sub("/{id}", path))
    return f"{target} {path}"


def _now() -> float:
    return time.time()


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True

    import flows.cut
    import flows.scene
    import tasks.judging
    from blocks.comfyui import ComfyUIPool

    render_cut = flows.scene.render_cut

    async def timed_render_cut(cut_id: int, *args: Any, **kwargs: Any) -> Any:
        times = records.setdefault(cut_id, CutTimes(cut_id))
        _current.set(times)
        times.call = _now()
        try:
            return await render_cut(cut_id, *args, **kwargs)
        finally:
            times.returned = _now()

    flows.scene.render_cut = timed_render_cut

    render_slot = flows.cut.render_slot

    @contextlib.asynccontextmanager
    async def timed_render_slot() -> AsyncIterator[None]:
        times = _current.get()
        if times is not None:
            times.slot_asked.append(_now())
        async with render_slot():
            if times is not None:
                times.slot_got.append(_now())
            try:
                yield
            finally:
                if times is not None:
                    times.slot_released.append(_now())

    flows.cut.render_slot = timed_render_slot

    pool_slot = ComfyUIPool.slot
    acquire_one = ComfyUIPool._acquire_one

    @contextlib.asynccontextmanager
    async def timed_pool_slot(self: ComfyUIPool, prefer: Any = None) -> AsyncIterator[Any]:
        times = _current.get()
        if times is not None:
            times.pool_entered.append(_now())
        async with pool_slot(self, prefer) as server:
            if times is not None:
                times.pool_held.append(_now())
                if len(times.pool_acquire_started) < len(times.pool_held):
                    # Handed over by the render before: held at once, no acquisition.
                    times.pool_acquire_started.append(times.pool_held[-1])
            yield server

    async def timed_acquire_one(self: ComfyUIPool, candidates: Any) -> Any:
        started = _now()
        acquired = await acquire_one(self, candidates)
        times = _current.get()
        if acquired is not None and times is not None:
            times.pool_acquire_started.append(started)
        return acquired

    ComfyUIPool.slot = timed_pool_slot  # type: ignore[method-assign]
    ComfyUIPool._acquire_one = timed_acquire_one  # type: ignore[method-assign]

    score = tasks.judging._score_cut

    def timed_score(*args: Any, **kwargs: Any) -> Any:
        started = _now()
        try:
            return score(*args, **kwargs)
        finally:
            times = _current.get()
            if times is not None:
                times.score_spans.append((started, _now()))

    tasks.judging._score_cut = timed_score
    _count_requests()


def _count_requests() -> None:
    import httpx
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    api = (PREFECT_API_URL.value() or "").removesuffix("/api")
    send = httpx.AsyncClient.send
    init = httpx.AsyncClient.__init__

    async def counted_send(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        counters["requests"][f"{request.method} {_route(request.url, api or '-')}"] += 1
        return await send(self, request, **kw)

    def counted_init(self: httpx.AsyncClient, *args: Any, **kw: Any) -> None:
        counters["clients"]["default CA bundle" if "verify" not in kw else "verify given"] += 1
        init(self, *args, **kw)

    httpx.AsyncClient.send = counted_send  # type: ignore[method-assign]
    httpx.AsyncClient.__init__ = counted_init  # type: ignore[method-assign]

    send_event = EventsWorker.send

    def counted_event(self: EventsWorker, event: Any) -> Any:
        counters["events"][getattr(event, "event", "?")] += 1
        return send_event(self, event)

    EventsWorker.send = counted_event  # type: ignore[method-assign]
