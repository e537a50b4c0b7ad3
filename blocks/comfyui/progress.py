"""Live progress of a prompt in the Prefect run: events turned into one percentage
(`ProgressTracker`), published to the run's log and to a progress artifact, both throttled
(`Throttle`, `RenderProgress`). Outside a Prefect run it only logs."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger

from blocks.comfyui.models import (
    NodeExecuting,
    NodeProgress,
    NodesCached,
    ProgressEvent,
    PromptDone,
    PromptQueued,
)

module_logger = logging.getLogger("blocks.comfyui.progress")


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
    """Publish at most every `min_interval_s`, unless progress jumped by `min_step` points.

    The defaults are the run log's pace: the start, halfway, the end, and a line every half
    minute of a long render, so a cut says what it did in a few lines (every line is a row
    the Prefect server writes; at 10-point steps they were most of a cut's 20)."""

    def __init__(
        self,
        min_interval_s: float = 30.0,
        min_step: float = 50.0,
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
        # log, and a render shorter than `artifact_delay_s` writes none.
        self.artifact_throttle = artifact_throttle or Throttle(min_interval_s=5.0, min_step=25.0)
        self.artifact_delay_s = artifact_delay_s
        self.started: float | None = None
        self.logger = logger or run_logger()
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
        # A render over before `artifact_delay_s` writes no artifact: nobody watched a bar
        # that short, and its end is in the log, the cut's state and the phase's tables.
        begun = self.artifact_id is not None or now - self.started >= self.artifact_delay_s
        if begun and self.artifact_throttle.due(percent, final=final):
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


def run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    try:
        return get_run_logger()
    except Exception:
        return module_logger
