"""One prompt run to its end: take a server slot (or use the one server given), submit or
re-attach, follow with live progress, download every output and read the server's
environment (`render_on`, `PromptRun`).

A server outage is waited out here, not by task retries: an unreachable server (refused
connections, a cut download, a prompt lost to a restart) is polled for health until it is
back, within its outage window (`unreachable_grace_s`), then the render goes on: a prompt
that finished is downloaded (again), never rendered again; one that did not is submitted
again under the same prompt id. Past the window, one `ComfyUIOutage`.

A finished prompt is known by ComfyUI's history, else by what an earlier run recorded
(`FinishedPrompt`), else by its files: a prompt in no queue or history whose every output
file is on the server under its prefix, holding this very graph, is downloaded, not rendered
(`blocks.comfyui.saved`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from blocks.comfyui.errors import (
    ComfyUIAttemptTimeout,
    ComfyUIError,
    ComfyUIOutputError,
    ComfyUIPromptLost,
    ComfyUITransientError,
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
from blocks.comfyui.progress import RenderProgress, run_logger
from blocks.comfyui.saved import embedded_graph_matches, expected_files
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
    attempt_key: str | None = None,
) -> PromptRun:
    """Render `graph` under `prompt_id` (on the pool's least busy server, holding its slot,
    or on the one server given), follow it with progress, then download every output.
    `new_prompt`: no server can have this prompt id yet (see `ComfyUIPool.render`).
    `finished`: what an earlier run saw this prompt produce: downloaded, not rendered.
    `on_finished(server, result)`: called once the prompt finished, before downloading.
    `before_submit()`: called before every (re)submission; raising stops the render (a job
    cancelled meanwhile). A render cancelled here (a Prefect cancellation) interrupts or
    dequeues its prompt on every server of the pool before it ends.
    The attempt ends past `attempt_timeout_s` (`ComfyUIAttemptTimeout`): counted from its
    first submission, or from that of the earlier try with the same `attempt_key` (a Prefect
    task run's id: a retry re-attaches with the time left, not a new deadline)."""
    progress = progress or RenderProgress(prompt_id, label or prompt_id, total_nodes=len(graph))
    pool = target if isinstance(target, ComfyUIPool) else ComfyUIPool([target])
    clock = _AttemptClock(pool, label or prompt_id, prompt_id, attempt_key)

    async def submitting() -> None:
        clock.start()  # the slot is held: from here on the attempt is on the clock
        if before_submit is not None:
            await before_submit()

    try:
        async with clock.bound:
            return await _attempt(
                pool, target, graph, prompt_id, dest_dir, progress, new_prompt, finished,
                on_finished, submitting, clock,
            )  # fmt: skip
    except ComfyUITransientError:
        clock.keep()  # it may be tried again: the retry goes on with this attempt's clock
        raise
    except TimeoutError:
        if not clock.bound.expired():
            raise
        if clock.stage == RENDERING:
            # Interrupted or dequeued on the way out, by `_rendered_or_withdrawn`.
            outcome = "its prompt was withdrawn from the server"
        else:
            withdrawn = await _withdraw(pool, prompt_id)
            outcome = {
                "interrupted": "its prompt was withdrawn from the server",
                "dequeued": "its prompt was withdrawn from the server",
                "already_finished": "its prompt had finished; no partial file was kept",
            }.get(withdrawn or "", "its prompt could not be withdrawn (server unreachable)")
        raise clock.expired(outcome) from None


RENDERING = "in ComfyUI's queue or rendering"


async def _withdraw(pool: ComfyUIPool, prompt_id: str) -> str | None:
    """Interrupt or dequeue the prompt wherever it is, within CANCEL_TIMEOUT_S; None when no
    server answered."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_S):
            return await pool.cancel(prompt_id)
    except (TimeoutError, ComfyUIError):
        return None


# When each attempt that a transient failure ended was first submitted (monotonic), by its
# `attempt_key`: the retry of a task run finds it. Keys are unique per task run, so a later
# re-run never inherits an old clock; the oldest are dropped past a bound.
_attempt_started: OrderedDict[str, float] = OrderedDict()
_KEPT_CLOCKS = 10_000


class _AttemptClock:
    """One render attempt's overall deadline (`attempt_timeout_s`, the longest of the pool's
    servers, as with the outage window): started once the prompt is about to be submitted
    (or, for an earlier run's finished prompt, downloaded), never while waiting for a slot;
    an earlier try of the same attempt (`key`) started it already."""

    def __init__(self, pool: ComfyUIPool, label: str, prompt_id: str, key: str | None) -> None:
        self.limit_s = max(s.get_client().settings.attempt_timeout_s for s in pool.servers)
        self.pool, self.label, self.prompt_id, self.key = pool, label, prompt_id, key
        self.bound = asyncio.timeout(None)
        self.stage = "waiting for a server slot"
        self.server: str | None = None
        self.started: float | None = _attempt_started.pop(key, None) if key else None

    def start(self) -> None:
        if self.bound.when() is not None:
            return
        now = time.monotonic()
        self.started = self.started or now
        left = max(0.0, self.started + self.limit_s - now)
        self.bound.reschedule(asyncio.get_running_loop().time() + left)

    def keep(self) -> None:
        if self.key and self.started is not None:
            _attempt_started[self.key] = self.started
            while len(_attempt_started) > _KEPT_CLOCKS:
                _attempt_started.popitem(last=False)

    def expired(self, outcome: str) -> ComfyUIAttemptTimeout:
        servers = self.server or ", ".join(s.base_url for s in self.pool.servers)
        return ComfyUIAttemptTimeout(
            f"render {self.label}: the attempt went past its {self.limit_s:g} s deadline "
            f"(the block's attempt_timeout_s) while {self.stage}; {outcome}",
            server=servers,
            prompt_id=self.prompt_id,
        )


async def _attempt(
    pool: ComfyUIPool,
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    dest_dir: Path,
    progress: RenderProgress,
    new_prompt: bool,
    finished: FinishedPrompt | None,
    on_finished: OnFinished | None,
    submitting: Callable[[], Awaitable[None]],
    clock: _AttemptClock,
) -> PromptRun:
    timings = RenderTimings()
    done: tuple[ComfyUIServer, PromptResult] | None = None
    recovered = False
    if finished is not None and (home := _server(pool, finished.server)) is not None:
        done = home, _recorded_result(prompt_id, finished)
        recovered = True
    # Nothing recorded: the prompt may still have finished, just before its server restarted
    # or this process died; its files are then on the server under its prefix.
    look_by_name = not new_prompt and finished is None
    while True:
        try:
            if done is None and look_by_name:
                look_by_name = False
                clock.stage = "looking for its outputs on the server"
                started = time.monotonic()
                if (found := await _found_by_name(pool, graph, prompt_id, dest_dir)) is not None:
                    server, result, files = found
                    timings.download_s = time.monotonic() - started
                    if on_finished is not None:
                        await on_finished(server.base_url, result)
                    return PromptRun(
                        server=server.base_url,
                        prompt_id=prompt_id,
                        result=result,
                        files=files,
                        environment=await server.get_client().system_stats(),
                        timings=timings,
                        recovered=True,
                    )
            if done is None:
                clock.stage = RENDERING
                done = await _rendered_or_withdrawn(
                    pool, target, graph, prompt_id, progress, new_prompt, timings, submitting
                )
                if on_finished is not None:
                    await on_finished(done[0].base_url, done[1])
            server, result = done
            clock.start()
            clock.server = server.base_url
            clock.stage = f"downloading its {len(result.outputs)} output file(s)"
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
            clock.stage = f"waiting for {', '.join(s.base_url for s in servers)} to come back"
            before = time.monotonic()
            await pool.wait_until_up(servers, down_since, exc.detail)
            timings.outage_s += time.monotonic() - min(before, down_since)
            if isinstance(exc, ComfyUIPromptLost):
                timings.resubmitted += 1
            new_prompt = False  # it may be on the server now (re-attach to it)
            look_by_name = done is None and finished is None  # or have finished meanwhile
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


async def _found_by_name(
    pool: ComfyUIPool, graph: dict[str, Any], prompt_id: str, dest_dir: Path
) -> tuple[ComfyUIServer, PromptResult, list[DownloadedFile]] | None:
    """The prompt's outputs, downloaded and verified, when a server neither queues nor
    remembers it but holds every file it saves (`blocks.comfyui.saved`); else None, and the
    prompt is rendered (or re-attached to) as ever."""
    if await pool.locate(prompt_id) is not None:
        return None  # a server has it still: re-attached to
    for server in pool.servers:
        try:
            found = await _found_on(server, graph, prompt_id, dest_dir)
        except ComfyUITransientError as exc:
            run_logger().info(
                "outputs of %s not looked for on %s: %s", prompt_id, server.base_url, exc
            )
            continue
        if found is not None:
            return found
    return None


async def _found_on(
    server: ComfyUIServer, graph: dict[str, Any], prompt_id: str, dest_dir: Path
) -> tuple[ComfyUIServer, PromptResult, list[DownloadedFile]] | None:
    client = server.get_client()
    output_types: set[str] = set()
    for class_type in sorted({str(node.get("class_type")) for node in graph.values()}):
        definition = (await client.object_info(class_type)).get(class_type)
        if not isinstance(definition, dict):
            return None  # the server cannot render this graph at all
        if definition.get("output_node"):
            output_types.add(class_type)
    expected = expected_files(graph, prompt_id, output_types)
    if isinstance(expected, str):
        run_logger().info(
            "prompt %s is on no server: rendered (again), its outputs cannot be looked for "
            "by name (%s)",
            prompt_id,
            expected,
        )
        return None
    if not await client.has_output(expected.files[0]):
        return None  # never saved there: the usual case, said nothing of
    files: list[DownloadedFile] = []
    why = None
    try:
        for extra in expected.next_files:
            if await client.has_output(extra):
                why = f"{extra.filename} follows them: the prefix saw more than one render"
                break
        for output in expected.files if why is None else []:
            file = await client.download(output, dest_dir)
            files.append(file)
            class_type = str(graph[output.node_id]["class_type"])
            if (wrong := embedded_graph_matches(file.path, graph, class_type)) is not None:
                why = f"{output.filename} {wrong}"
                break
    except ComfyUIOutputError as exc:
        why = exc.detail
    except BaseException:
        for file in files:
            file.path.unlink(missing_ok=True)
        raise
    if why is not None:
        for file in files:
            file.path.unlink(missing_ok=True)
        run_logger().info(
            "prompt %s: its outputs on %s are not complete, so it is rendered again (%s)",
            prompt_id,
            server.base_url,
            why,
        )
        return None
    run_logger().info(
        "prompt %s finished on %s before its history was lost: its %d output file(s) were "
        "found by name, verified and downloaded, not rendered again",
        prompt_id,
        server.base_url,
        len(files),
    )
    result = PromptResult(
        prompt_id=prompt_id, server=server.base_url, status="success", outputs=expected.files
    )
    return server, result, files


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
