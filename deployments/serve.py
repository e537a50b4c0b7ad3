"""`anime serve`: every deployment served from this machine, schedules included.

Before serving, each configured ComfyUI server gets its Prefect global concurrency limit
(limit = its slots), so renders on this and every other host share one count per server.
Deployments are not paused on the way out: a stopped machine must not silently switch off
the nightly schedule for the others (pass `pause_on_shutdown=True` to get Prefect's default).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable

import anyio
from prefect.runner import Runner
from prefect.utilities.annotations import NotSet

from deployments.catalogue import ScheduleOverrides, deployment_specs, runner_deployment

logger = logging.getLogger("anime.serve")

class ServeError(RuntimeError):
    """Serving cannot start; the message says what to fix."""


async def comfyui_server_blocks() -> list[tuple[str, object]]:
    """(block name, ComfyUIServer) for every ComfyUI server block saved in Prefect."""
    from blocks.comfyui import saved_servers

    return list(await saved_servers())


async def ensure_comfyui_limits() -> dict[str, int]:
    """One global concurrency limit per ComfyUI server block (created or updated)."""
    from blocks.comfyui import ensure_concurrency_limits

    servers = [server for _, server in await comfyui_server_blocks()]
    if not servers:
        return {}
    try:
        return await ensure_concurrency_limits(servers)
    except ValueError as exc:  # two blocks for one server disagree on its slots
        raise ServeError(str(exc)) from None


async def studio_runner(
    overrides: ScheduleOverrides | None = None,
    *,
    limit: int | None = None,
    pause_on_shutdown: bool = False,
    poll_seconds: float | None = None,
    name: str | None = None,
) -> Runner:
    """A Runner with every deployment of prefect.yaml added (and so registered with the API);
    `await runner.start()` serves them."""
    specs = deployment_specs(overrides)
    limits = await ensure_comfyui_limits()
    for limit_name, slots in limits.items():
        logger.info("ComfyUI slots: %s = %d", limit_name, slots)
    runner = Runner(
        name=name or f"anime-{socket.gethostname()}",
        pause_on_shutdown=pause_on_shutdown,
        limit=NotSet if limit is None else limit,  # Prefect's default: PREFECT_RUNNER_PROCESS_LIMIT
        query_seconds=poll_seconds,
    )
    for spec in specs:
        await runner.add_deployment(await runner_deployment(spec))
    return runner


async def serve_until(stop: threading.Event, runner: Runner) -> None:
    """Serve until `stop` is set, then stop polling and cancel what this runner runs."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.start)
        while not stop.is_set():
            await anyio.sleep(0.2)
        if runner.started:
            await runner.astop()
        tg.cancel_scope.cancel()


def run_until_signalled(main: Callable[[threading.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on an event loop in a worker thread; SIGINT / SIGTERM set `stop`.

    Prefect's Runner and uvicorn install their own signal handlers when they run on the main
    thread (the Runner's exits the process from inside the handler); off the main thread they
    do not, so shutdown happens here, in order, and the process exits normally (which also
    lets an embedded PostgreSQL stop cleanly at exit).
    """
    stop = threading.Event()
    errors: list[BaseException] = []

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            return
        logger.warning("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    def body() -> None:
        try:
            asyncio.run(main(stop))
        except BaseException as exc:  # reported on the main thread
            errors.append(exc)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker = threading.Thread(target=body, name="anime-serve", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if errors:
        raise errors[0]
