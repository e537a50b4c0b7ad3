"""What the ComfyUI client hands back: submissions, progress events, results, files."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from blocks.comfyui.errors import ComfyUICancelled, ComfyUIExecutionError

# Fixed namespace: the same (job, attempt) gives the same prompt id on every machine, forever.
PROMPT_NAMESPACE = uuid.UUID("6b1f3c2e-5a7d-4e0b-9c1a-2f6d8e4b7a10")


def prompt_id_for(job_id: str | int | uuid.UUID, attempt: int, database: str = "") -> str:
    """The prompt id of one render attempt of a job, derived so that a worker that crashed
    and retries asks for the same id, finds it on the server and re-attaches to it.
    ``database``: the id of the database the job is in (db/identity.py): job ids repeat from
    one database to the next, and two of them may share a server."""
    where = f"database:{database}:" if database else ""
    return str(uuid.uuid5(PROMPT_NAMESPACE, f"{where}job:{job_id}:attempt:{attempt}"))


def client_id_for(prompt_id: str) -> str:
    """The WebSocket clientId a prompt is submitted and followed with (a reconnect, or a
    retrying worker, uses the same one: ComfyUI routes execution messages by it)."""
    return uuid.uuid5(PROMPT_NAMESPACE, f"client:{prompt_id}").hex


class OutputFile(BaseModel):
    """One file a node reported (`images`, `gifs`, `audio`, ... in its output)."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    kind: str = Field(description="output key: images, gifs, audio, video, ...")
    filename: str
    subfolder: str = ""
    type: str = "output"
    animated: bool = False


class ExecutionFailure(BaseModel):
    node_id: str
    node_type: str
    exception_type: str
    exception_message: str
    traceback: list[str] = Field(default_factory=list)


PromptStatus = Literal["success", "error", "interrupted"]


class PromptResult(BaseModel):
    """A finished prompt, from `/history` (ComfyUI's record of it: the project's own record of
    a render is `tasks.outputs.RenderResult`)."""

    prompt_id: str
    server: str
    status: PromptStatus
    number: float | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    raw_outputs: dict[str, Any] = Field(default_factory=dict)
    failure: ExecutionFailure | None = None
    interrupted_at: str | None = None
    messages: list[Any] = Field(default_factory=list)

    def raise_for_status(self) -> None:
        if self.status == "error" and self.failure is not None:
            f = self.failure
            raise ComfyUIExecutionError(
                node_id=f.node_id,
                node_type=f.node_type,
                exception_type=f.exception_type,
                exception_message=f.exception_message,
                traceback=f.traceback,
                server=self.server,
                prompt_id=self.prompt_id,
            )
        if self.status == "error":
            raise ComfyUIExecutionError(
                node_id="?",
                node_type="?",
                exception_type="unknown",
                exception_message="the server recorded an error without details",
                server=self.server,
                prompt_id=self.prompt_id,
            )
        if self.status == "interrupted":
            where = f" at node {self.interrupted_at}" if self.interrupted_at else ""
            raise ComfyUICancelled(
                f"the prompt was interrupted{where}", server=self.server, prompt_id=self.prompt_id
            )

    @classmethod
    def from_history(cls, prompt_id: str, entry: dict[str, Any], server: str) -> PromptResult:
        status_block = entry.get("status") or {}
        messages = list(status_block.get("messages") or [])
        failure = None
        interrupted_at = None
        status: PromptStatus = "success"
        for kind, data in (m for m in messages if isinstance(m, list) and len(m) == 2):
            if kind == "execution_error":
                status, failure = "error", execution_failure(data)
            elif kind == "execution_interrupted":
                status, interrupted_at = "interrupted", str(data.get("node_id") or "") or None
        if status == "success" and status_block.get("status_str") == "error":
            status = "error"
        prompt = entry.get("prompt") or []
        raw_outputs = entry.get("outputs") or {}
        return cls(
            prompt_id=prompt_id,
            server=server,
            status=status,
            number=prompt[0] if prompt and isinstance(prompt[0], int | float) else None,
            outputs=output_files(raw_outputs),
            raw_outputs=raw_outputs,
            failure=failure,
            interrupted_at=interrupted_at,
            messages=messages,
        )


def execution_failure(data: dict[str, Any]) -> ExecutionFailure:
    return ExecutionFailure(
        node_id=str(data.get("node_id", "?")),
        node_type=str(data.get("node_type", "?")),
        exception_type=str(data.get("exception_type", "?")),
        exception_message=str(data.get("exception_message", "")),
        traceback=[str(line) for line in data.get("traceback") or []],
    )


def output_files(raw_outputs: dict[str, Any]) -> list[OutputFile]:
    """Every file listed in a `/history` or `executed` output, in node order."""
    files = []
    for node_id, output in raw_outputs.items():
        if not isinstance(output, dict):
            continue
        animated = bool(any(output.get("animated") or []))
        for kind, items in output.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    files.append(
                        OutputFile(
                            node_id=str(node_id),
                            kind=kind,
                            filename=str(item["filename"]),
                            subfolder=str(item.get("subfolder") or ""),
                            type=str(item.get("type") or "output"),
                            animated=animated,
                        )
                    )
    return files


class Submission(BaseModel):
    prompt_id: str
    server: str
    client_id: str
    number: float | None = None
    reattached: bool = Field(
        False, description="the prompt was already on the server; nothing new was queued"
    )
    state: Literal["queued", "running", "done"] = "queued"


class DownloadedFile(BaseModel):
    output: OutputFile
    path: Path
    size: int
    sha256: str
    content_type: str | None = None


class ServerEnvironment(BaseModel):
    """`/system_stats`: what to store with every job to reproduce it."""

    comfyui_version: str | None = None
    python_version: str | None = None
    pytorch_version: str | None = None
    devices: list[dict[str, Any]] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> ServerEnvironment:
        system = stats.get("system") or {}
        return cls(
            comfyui_version=system.get("comfyui_version"),
            python_version=system.get("python_version"),
            pytorch_version=system.get("pytorch_version"),
            devices=list(stats.get("devices") or []),
            raw=stats,
        )


class HealthReport(BaseModel):
    server: str
    ok: bool
    latency_s: float | None = None
    queue_remaining: int | None = None
    comfyui_version: str | None = None
    error: str | None = None


CancelOutcome = Literal["interrupted", "dequeued", "already_finished", "unknown"]


@dataclass(frozen=True)
class PromptState:
    """Where a prompt is, from `/queue` then `/history` (in that order: a prompt leaves the
    queue only once its history entry exists, so missing from both means lost)."""

    phase: Literal["queued", "running", "done", "absent"]
    position: int | None = None
    number: float | None = None
    entry: dict[str, Any] | None = None
    graph: Any = None  # the graph the server holds under this id, as it was submitted


# -- progress events (what `follow` yields) --------------------------------------------------


@dataclass(frozen=True)
class PromptQueued:
    prompt_id: str
    position: int  # prompts ahead of it in the pending queue


@dataclass(frozen=True)
class PromptStarted:
    prompt_id: str


@dataclass(frozen=True)
class NodesCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class NodeExecuting:
    prompt_id: str
    node: str
    display_node: str | None = None


@dataclass(frozen=True)
class NodeProgress:
    prompt_id: str
    node: str | None
    value: float
    max: float

    @property
    def fraction(self) -> float:
        return min(1.0, max(0.0, self.value / self.max)) if self.max else 0.0


@dataclass(frozen=True)
class NodeExecuted:
    prompt_id: str
    node: str
    output: dict[str, Any]

    @property
    def files(self) -> list[OutputFile]:
        return output_files({self.node: self.output})


@dataclass(frozen=True)
class PromptSucceeded:
    prompt_id: str


@dataclass(frozen=True)
class PromptFailed:
    prompt_id: str
    failure: ExecutionFailure


@dataclass(frozen=True)
class PromptInterrupted:
    prompt_id: str
    node_id: str | None = None
    node_type: str | None = None


@dataclass(frozen=True)
class PromptDone:
    """Always the last event: the history entry, whatever the outcome."""

    prompt_id: str
    result: PromptResult


ProgressEvent = (
    PromptQueued
    | PromptStarted
    | NodesCached
    | NodeExecuting
    | NodeProgress
    | NodeExecuted
    | PromptSucceeded
    | PromptFailed
    | PromptInterrupted
    | PromptDone
)
