"""Rendering on ComfyUI as Prefect tasks: submit, follow (with live progress), download.

The plain pieces come first (`ProgressTracker`, `RenderProgress`, `render_on`); the `@task`
wrappers below are thin. Retries only happen for `ComfyUITransientError` (connection lost,
5xx, timeouts, a server restart that lost the queue); since a retry asks for the same prompt
id, it re-attaches to a prompt the server still has instead of rendering it twice.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.comfyui import (
    ComfyUIPool,
    ComfyUIServer,
    ComfyUITransientError,
    DownloadedFile,
    NodeExecuting,
    NodeProgress,
    NodesCached,
    ProgressEvent,
    PromptDone,
    PromptQueued,
    RenderResult,
    ServerEnvironment,
    Submission,
)

module_logger = logging.getLogger("tasks.comfyui")


async def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry what may pass next time, never a verdict
    (validation error, execution error, cancellation, output over the cap).

    Async on purpose: in an async task `state.result()` is a coroutine, and a sync check that
    calls it sees no exception and never retries."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            outcome = await state.aresult(raise_on_failure=False)
        except Exception as exc:
            outcome = exc
        error = outcome if isinstance(outcome, BaseException) else None
    return isinstance(error, ComfyUITransientError)


class ProgressTracker:
    """Turns progress events into one percentage for the whole prompt.

    Nodes count equally; the running node contributes its own value/max. With the graph
    known, the total is its node count minus cached nodes; without it, the running node's
    progress is all there is to show.
    """

    def __init__(self, total_nodes: int | None = None) -> None:
        self.total_nodes = total_nodes
        self.cached = 0
        self.started: list[str] = []
        self.fraction = 0.0
        self.percent = 0.0
        self.detail = "queued"

    def observe(self, event: ProgressEvent) -> float:
        if isinstance(event, PromptDone):
            self.percent = 100.0
            self.detail = event.result.status
            return self.percent
        if isinstance(event, PromptQueued):
            self.detail = f"queued, {event.position} ahead"
        elif isinstance(event, NodesCached):
            self.cached = len(event.nodes)
        elif isinstance(event, NodeExecuting):
            if event.node not in self.started:
                self.started.append(event.node)
            self.fraction = 0.0
            self.detail = f"node {event.node}"
        elif isinstance(event, NodeProgress):
            self.fraction = event.fraction
            self.detail = f"node {event.node} {event.value:g}/{event.max:g}"
        if self.total_nodes:
            work = max(1, self.total_nodes - self.cached)
            done = max(0, len(self.started) - 1) + self.fraction
            estimate = 100.0 * done / work
        else:
            estimate = 100.0 * self.fraction
        # Never go backwards, never claim 100 before the history says it is done.
        self.percent = max(self.percent, min(99.0, estimate))
        return self.percent


class Throttle:
    """Publish at most every `min_interval_s`, unless progress jumped by `min_step` points."""

    def __init__(
        self,
        min_interval_s: float = 1.5,
        min_step: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.min_step = min_step
        self.clock = clock
        self.last_time: float | None = None
        self.last_percent = -1.0

    def due(self, percent: float, final: bool = False) -> bool:
        now = self.clock()
        changed = percent > self.last_percent
        if final or self.last_time is None:
            due = True
        elif not changed:
            due = False
        else:
            jumped = percent - self.last_percent >= self.min_step
            due = jumped or now - self.last_time >= self.min_interval_s
        if due:
            self.last_time, self.last_percent = now, percent
        return due


def _artifact_key(prompt_id: str) -> str:
    return "comfyui-" + re.sub(r"[^a-z0-9-]", "-", prompt_id.lower())[:60]


class RenderProgress:
    """Live progress of one prompt in the Prefect run: log lines and a progress artifact,
    both throttled. Outside a Prefect run it only logs."""

    def __init__(
        self,
        prompt_id: str,
        label: str,
        *,
        total_nodes: int | None = None,
        throttle: Throttle | None = None,
        artifact_throttle: Throttle | None = None,
        artifact_delay_s: float = 5.0,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        artifacts: bool | None = None,
    ) -> None:
        self.prompt_id = prompt_id
        self.label = label
        self.tracker = ProgressTracker(total_nodes)
        self.throttle = throttle or Throttle()
        # The artifact is an API write and a server event each time: far sparser than the
        # log, and a render shorter than `artifact_delay_s` writes only its final state.
        self.artifact_throttle = artifact_throttle or Throttle(min_interval_s=5.0, min_step=25.0)
        self.artifact_delay_s = artifact_delay_s
        self.started: float | None = None
        self.logger = logger or _run_logger()
        in_run = FlowRunContext.get() is not None or TaskRunContext.get() is not None
        self.artifacts = in_run if artifacts is None else artifacts
        self.artifact_id: UUID | None = None
        self.published: list[float] = []

    async def __call__(self, event: ProgressEvent) -> None:
        percent = self.tracker.observe(event)
        final = isinstance(event, PromptDone)
        now = self.artifact_throttle.clock()
        self.started = now if self.started is None else self.started
        if self.throttle.due(percent, final=final):
            self.published.append(percent)
            self.logger.info("%s: %3.0f%% (%s)", self.label, percent, self.tracker.detail)
        if not self.artifacts:
            return
        begun = self.artifact_id is not None or now - self.started >= self.artifact_delay_s
        if (final or begun) and self.artifact_throttle.due(percent, final=final):
            await self._publish(percent)

    async def _publish(self, percent: float) -> None:
        description = f"{self.label} ({self.tracker.detail})"
        try:
            if self.artifact_id is None:
                self.artifact_id = await acreate_progress_artifact(
                    percent, key=_artifact_key(self.prompt_id), description=description
                )
            else:
                await aupdate_progress_artifact(self.artifact_id, percent, description=description)
        except Exception as exc:  # progress is a courtesy: never fail a render over it
            self.logger.warning("could not update the progress artifact: %s", exc)
            self.artifacts = False


def _run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    try:
        return get_run_logger()
    except Exception:
        return module_logger


class RenderOutcome(BaseModel):
    """What one render produced, with what is needed to reproduce it."""

    server: str
    prompt_id: str
    result: RenderResult
    files: list[DownloadedFile] = Field(default_factory=list)
    environment: ServerEnvironment | None = None


async def render_on(
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    dest_dir: Path,
    *,
    label: str | None = None,
    progress: RenderProgress | None = None,
    new_prompt: bool = False,
) -> RenderOutcome:
    """Render `graph` under `prompt_id` (on the pool's least busy server, holding its slot,
    or on the one server given), follow it with progress, then download every output.
    `new_prompt`: no server can have this prompt id yet (see `ComfyUIPool.render`)."""
    progress = progress or RenderProgress(prompt_id, label or prompt_id, total_nodes=len(graph))
    if isinstance(target, ComfyUIPool):
        server, result = await target.render(
            graph, prompt_id, on_event=progress, new_prompt=new_prompt
        )
    else:
        server = target
        result = await server.render(graph, prompt_id, on_event=progress)
    environment = await server.system_stats()
    files = await server.download_all(result, dest_dir)
    return RenderOutcome(
        server=server.base_url,
        prompt_id=prompt_id,
        result=result,
        files=files,
        environment=environment,
    )


_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_condition_fn": retry_transient_only,
    "cache_policy": NO_CACHE,
}


@task(name="comfyui-submit", task_run_name="submit {prompt_id}", **_RETRIES)
async def submit_prompt(
    server: ComfyUIServer,
    graph: dict[str, Any],
    prompt_id: str,
    extra_data: dict[str, Any] | None = None,
) -> Submission:
    return await server.submit(graph, prompt_id, extra_data=extra_data)


@task(name="comfyui-follow", task_run_name="follow {prompt_id}", **_RETRIES)
async def follow_prompt(
    server: ComfyUIServer, prompt_id: str, label: str | None = None, total_nodes: int | None = None
) -> RenderResult:
    progress = RenderProgress(prompt_id, label or prompt_id, total_nodes=total_nodes)
    result: RenderResult | None = None
    async for event in server.follow(prompt_id):
        await progress(event)
        if isinstance(event, PromptDone):
            result = event.result
    assert result is not None
    return result


@task(name="comfyui-download", task_run_name="download {result.prompt_id}", **_RETRIES)
async def download_outputs(
    server: ComfyUIServer, result: RenderResult, dest_dir: Path
) -> list[DownloadedFile]:
    return await server.download_all(result, Path(dest_dir))


@task(name="comfyui-render", task_run_name="render {label}", **_RETRIES)
async def render_prompt(
    target: ComfyUIServer | ComfyUIPool,
    graph: dict[str, Any],
    prompt_id: str,
    dest_dir: Path,
    label: str = "render",
) -> RenderOutcome:
    """Submit-follow-download in one task, holding a server slot while it renders."""
    return await render_on(target, graph, prompt_id, Path(dest_dir), label=label)
