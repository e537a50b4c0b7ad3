"""One prompt run to its end: take a server slot (or use the one server given), submit or
re-attach, follow with live progress, download every output and read the server's
environment (`render_on`, `PromptRun`).

A server outage is waited out here, not by task retries: an unreachable server (refused
connections, a cut download, a prompt lost to a restart) is polled for health until it is
back, within its outage window (`unreachable_grace_s`), then the render goes on: a prompt
that finished is downloaded (again), never rendered again; one that did not is submitted
again under the same prompt id. Past the window, one `ComfyUIOutage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from blocks.comfyui.errors import (
    ComfyUIOutputError,
    ComfyUIPromptLost,
    ComfyUIUnavailable,
)
from blocks.comfyui.models import (
    DownloadedFile,
    OutputFile,
    ProgressEvent,
    PromptResult,
    PromptStarted,
    ServerEnvironment,
)
from blocks.comfyui.pool import ComfyUIPool
from blocks.comfyui.progress import RenderProgress
from blocks.comfyui.server import ComfyUIServer


class RenderTimings(BaseModel):
    """Seconds of one prompt run: waiting in ComfyUI's queue (our clock, submission to the
    prompt's start), executing (ComfyUI's own execution timestamps), downloading."""

    queue_wait_s: float | None = None
    execution_s: float | None = None
    download_s: float | None = None
    outage_s: float = 0.0  # time spent waiting for an unreachable server
    resubmitted: int = 0  # submissions again after the server lost the prompt


class PromptRun(BaseModel):
    """What one prompt run produced on which server, with what is needed to reproduce it
    (ComfyUI's side of a render: the project's record is `tasks.outputs.RenderResult`)."""

    server: str
    prompt_id: str
    result: PromptResult
    files: list[DownloadedFile] = Field(default_factory=list)
    environment: ServerEnvironment | None = None
    timings: RenderTimings = Field(default_factory=RenderTimings)
    recovered: bool = False  # outputs an earlier run saw finish: downloaded, not rendered


class FinishedPrompt(BaseModel):
    """A prompt an earlier run saw finish on `server`, with its outputs (ComfyUI's history
    is lost on a restart; its output files are not)."""

    server: str
    outputs: list[OutputFile]
    sha256: dict[str, str] = Field(default_factory=dict)  # filename -> of a full download


OnFinished = Callable[[str, PromptResult], Awaitable[None]]
CANCEL_TIMEOUT_S = 2.0  # a cancelled render takes its prompt off every server within this


def execution_seconds(result: PromptResult) -> float | None:
    """From ComfyUI's execution timestamps (ms) in the history's status messages."""
    stamps: dict[str, float] = {}
    for message in result.messages:
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
            stamp = message[1].get("timestamp")
            if isinstance(stamp, int | float):
                stamps.setdefault(str(message[0]), float(stamp))
    start = stamps.get("execution_start")
    end = next(
        (
            stamps[k]
            for k in ("execution_success", "execution_error", "execution_interrupted")
            if k in stamps
        ),
        None,
    )
    return None if start is None or end is None else max(0.0, (end - start) / 1000.0)


async def render_on(
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    dest_dir: Path,
    *,
    label: str | None = None,
    progress: RenderProgress | None = None,
    new_prompt: bool = False,
    finished: FinishedPrompt | None = None,
    on_finished: OnFinished | None = None,
    before_submit: Callable[[], Awaitable[None]] | None = None,
) -> PromptRun:
    """Render `graph` under `prompt_id` (on the pool's least busy server, holding its slot,
    or on the one server given), follow it with progress, then download every output.
    `new_prompt`: no server can have this prompt id yet (see `ComfyUIPool.render`).
    `finished`: what an earlier run saw this prompt produce: downloaded, not rendered.
    `on_finished(server, result)`: called once the prompt finished, before downloading.
    `before_submit()`: called before every (re)submission; raising stops the render (a job
    cancelled meanwhile). A render cancelled here (a Prefect cancellation) interrupts or
    dequeues its prompt on every server of the pool before it ends."""
    progress = progress or RenderProgress(prompt_id, label or prompt_id, total_nodes=len(graph))
    pool = target if isinstance(target, ComfyUIPool) else ComfyUIPool([target])
    timings = RenderTimings()
    done: tuple[ComfyUIServer, PromptResult] | None = None
    recovered = False
    if finished is not None and (home := _server(pool, finished.server)) is not None:
        done = home, _recorded_result(prompt_id, finished)
        recovered = True
    while True:
        try:
            if done is None:
                done = await _rendered_or_withdrawn(
                    pool, target, graph, prompt_id, progress, new_prompt, timings, before_submit
                )
                if on_finished is not None:
                    await on_finished(done[0].base_url, done[1])
            server, result = done
            client = server.get_client()
            environment = await client.system_stats()
            started = time.monotonic()
            files = await client.download_all(result, dest_dir)
            timings.download_s = time.monotonic() - started
            if finished is not None:
                _verify(files, finished, server.base_url, prompt_id)
            return PromptRun(
                server=server.base_url,
                prompt_id=prompt_id,
                result=result,
                files=files,
                environment=environment,
                timings=timings,
                recovered=recovered,
            )
        except (ComfyUIUnavailable, ComfyUIPromptLost) as exc:
            down_since = getattr(exc, "down_since", None) or time.monotonic()
            servers = [s for s in pool.servers if s.base_url == exc.server] or pool.servers
            if done is not None:
                servers = [done[0]]  # the outputs are there: wait for that server only
            before = time.monotonic()
            await pool.wait_until_up(servers, down_since, exc.detail)
            timings.outage_s += time.monotonic() - min(before, down_since)
            if isinstance(exc, ComfyUIPromptLost):
                timings.resubmitted += 1
            new_prompt = False  # it may be on the server now (re-attach to it)
        except ComfyUIOutputError:
            if not recovered:
                raise
            # An earlier run's outputs are gone from the server (its output folder cleaned):
            # render them after all.
            done, recovered, finished = None, False, None


async def _rendered_or_withdrawn(
    pool: ComfyUIPool,
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    progress: RenderProgress,
    new_prompt: bool,
    timings: RenderTimings,
    before_submit: Callable[[], Awaitable[None]] | None,
) -> tuple[ComfyUIServer, PromptResult]:
    try:
        return await _render(
            pool, target, graph, prompt_id, progress, new_prompt, timings, before_submit
        )
    except asyncio.CancelledError:
        # Cancelled from outside (the Prefect run was cancelled): the prompt must not go on
        # rendering on the server for nobody.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await asyncio.shield(pool.cancel(prompt_id))
        raise


async def _render(
    pool: ComfyUIPool,
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    progress: RenderProgress,
    new_prompt: bool,
    timings: RenderTimings,
    before_submit: Callable[[], Awaitable[None]] | None,
) -> tuple[ComfyUIServer, PromptResult]:
    submitted = time.monotonic()

    async def on_event(event: ProgressEvent) -> None:
        if isinstance(event, PromptStarted) and timings.queue_wait_s is None:
            timings.queue_wait_s = time.monotonic() - submitted
        await progress(event)

    if isinstance(target, ComfyUIPool):
        server, result = await pool.render(
            graph, prompt_id, on_event=on_event, new_prompt=new_prompt, before_submit=before_submit
        )
    else:
        server = target
        if before_submit is not None:
            await before_submit()
        result = await server.get_client().render(graph, prompt_id, on_event=on_event)
    timings.execution_s = execution_seconds(result)
    return server, result


def _server(pool: ComfyUIPool, base_url: str) -> ComfyUIServer | None:
    return next((s for s in pool.servers if s.base_url == base_url), None)


def _recorded_result(prompt_id: str, finished: FinishedPrompt) -> PromptResult:
    return PromptResult(
        prompt_id=prompt_id, server=finished.server, status="success", outputs=finished.outputs
    )


def _verify(
    files: list[DownloadedFile], finished: FinishedPrompt, server: str, prompt_id: str
) -> None:
    for file in files:
        expected = finished.sha256.get(file.output.filename)
        if expected is not None and expected != file.sha256:
            raise ComfyUIOutputError(
                f"output {file.output.filename!r} differs from the one downloaded before "
                f"(sha256 {file.sha256[:12]}, recorded {expected[:12]}): rendered again",
                server=server,
                prompt_id=prompt_id,
            )
