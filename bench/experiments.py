"""Proposed overhead fixes, tried in the benchmarked process only, to measure what each gains.

None of these is the shipped code: each stands in for a change docs/benchmarks.md proposes in
flows/, tasks/ or blocks/ (which the lead applies), so that its effect can be measured before
it is made. `apply()` runs after `bench.probes.install()`, so the probes still time the real
cut path; every experiment keeps the behaviour a user sees on a fresh run (every cut rendered
once, judged, stored), and says below what it would change on a resumed run.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

EXPERIMENTS = {
    "shared_tls": "ComfyUI HTTP clients share one TLS context (no CA bundle load per request)",
    "quiet_progress": "render progress published at most every 10 s or 50 points",
    "pool_cache": "the ComfyUI pool (its server blocks) loaded once per process, not per render",
    "no_locate": "no look-up on every server before a fresh attempt's first submission",
    "env_cache": "a server's /system_stats read once per process, not after every render",
    "fewer_tasks": "brief, state and store run inside the cut flow, not as 3 Prefect tasks",
    "gated_start": "a cut subflow starts only when one of 2 x (slots + 1) admissions is free",
}


def apply(names: list[str], total_slots: int) -> None:
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; known: {sorted(EXPERIMENTS)}")
    for name in names:
        globals()[f"_{name}"](total_slots)


def _shared_tls(_: int) -> None:
    import httpx

    from blocks.comfyui_client import ComfyUIClient

    context = ssl.create_default_context()

    @contextlib.asynccontextmanager
    async def _http(self: ComfyUIClient) -> AsyncIterator[httpx.AsyncClient]:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
        async with httpx.AsyncClient(
            base_url=self.server,
            headers=self._headers,
            timeout=timeout,
            follow_redirects=False,
            verify=context,
        ) as http:
            yield http

    ComfyUIClient._http = _http  # type: ignore[method-assign]


def _quiet_progress(_: int) -> None:
    import tasks.comfyui

    original = tasks.comfyui.Throttle.__init__

    def init(self: Any, min_interval_s: float = 10.0, min_step: float = 50.0, **kw: Any) -> None:
        original(self, min_interval_s=min_interval_s, min_step=min_step, **kw)

    tasks.comfyui.Throttle.__init__ = init  # type: ignore[method-assign]


def _pool_cache(_: int) -> None:
    import tasks.comfyui_render

    load = tasks.comfyui_render._pool
    cache: dict[tuple[str, ...], tuple[float, Any]] = {}

    async def pool(server_names: list[str]) -> Any:
        key = tuple(server_names)
        found = cache.get(key)
        if found is None or time.monotonic() - found[0] > 60:
            found = cache[key] = (time.monotonic(), await load(server_names))
        return found[1]

    tasks.comfyui_render._pool = pool


def _no_locate(_: int) -> None:
    from blocks.comfyui_pool import ComfyUIPool

    async def locate(self: ComfyUIPool, prompt_id: str) -> None:
        return None  # every attempt in a bench run is new: nothing to re-attach to

    ComfyUIPool.locate = locate  # type: ignore[method-assign]


def _env_cache(_: int) -> None:
    from blocks.comfyui import ComfyUIServer

    stats = ComfyUIServer.system_stats
    cache: dict[str, Any] = {}

    async def system_stats(self: ComfyUIServer) -> Any:
        if self.base_url not in cache:
            cache[self.base_url] = await stats(self)
        return cache[self.base_url]

    ComfyUIServer.system_stats = system_stats  # type: ignore[method-assign]


def _fewer_tasks(_: int) -> None:
    import flows.cut
    from tasks import production, render

    production.load_cut_brief = production.load_cut_brief.fn  # type: ignore[assignment]
    production.cut_state = production.cut_state.fn  # type: ignore[assignment]
    flows.cut.store_render = render.store_render.fn  # type: ignore[assignment]


def _gated_start(total_slots: int) -> None:
    import anyio

    import flows.scene

    render_cut = flows.scene.render_cut
    limiters: dict[int, anyio.CapacityLimiter] = {}

    async def admitted(*args: Any, **kwargs: Any) -> Any:
        import asyncio

        loop = id(asyncio.get_running_loop())
        limiter = limiters.setdefault(loop, anyio.CapacityLimiter(2 * (total_slots + 1)))
        async with limiter:
            return await render_cut(*args, **kwargs)

    flows.scene.render_cut = admitted
