"""The `ComfyUIServer` block: one ComfyUI server, as people configure it in the Prefect UI,
with the async client methods render tasks call.

Register with `prefect block register -m blocks.comfyui`. Several servers: `ComfyUIPool`
(blocks/comfyui_pool.py, re-exported here) with one Prefect global concurrency limit per
server (`ensure_concurrency_limits`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from blocks.comfyui_client import ClientSettings, ComfyUIClient, check_api_graph
from blocks.comfyui_errors import (
    ComfyUIAuthError,
    ComfyUICancelled,
    ComfyUIConcurrencyLimitMissing,
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIOutputError,
    ComfyUIOutputTooLarge,
    ComfyUIPoolBusy,
    ComfyUIPromptLost,
    ComfyUIProtocolError,
    ComfyUIRenderTimeout,
    ComfyUITransientError,
    ComfyUIUnavailable,
    ComfyUIValidationError,
    NodeError,
)
from blocks.comfyui_models import (
    CancelOutcome,
    DownloadedFile,
    ExecutionFailure,
    HealthReport,
    NodeExecuted,
    NodeExecuting,
    NodeProgress,
    NodesCached,
    OutputFile,
    ProgressEvent,
    PromptDone,
    PromptFailed,
    PromptInterrupted,
    PromptQueued,
    PromptStarted,
    PromptState,
    PromptSucceeded,
    RenderResult,
    ServerEnvironment,
    Submission,
    client_id_for,
    prompt_id_for,
)
from blocks.comfyui_pool import ComfyUIPool, ensure_concurrency_limits

# Characters Prefect refuses in a global concurrency limit name.
_LIMIT_NAME_BANNED = re.compile(r"[/%&<>]")


class ComfyUIServer(Block):
    """A ComfyUI server that renders the studio's workflows.

    `slots` is how many prompts this server may have at once (queued or running); it is
    enforced across processes and machines by the Prefect global concurrency limit
    `concurrency_limit` (created by `ensure_concurrency_limits`). The token is only ever
    sent in the configured header and never appears in logs or errors.
    """

    _block_type_name = "ComfyUI Server"
    _block_type_slug = "anime-comfyui-server"
    _description = "A ComfyUI server render tasks submit workflows to, with its slots."

    base_url: str = Field(
        ...,
        description="Where ComfyUI answers, e.g. http://gpu-1:8188 (a path prefix behind a "
        "reverse proxy is fine)",
    )
    auth_token: SecretStr | None = Field(
        None, description="Token for the proxy in front of ComfyUI, if it wants one"
    )
    auth_header: str = Field("Authorization", description="Header that carries the token")
    auth_scheme: str = Field(
        "Bearer", description="Word before the token in the header ('' sends the token alone)"
    )
    # Two by default: ComfyUI runs one prompt at a time, and the second waits in its own
    # queue, so the GPU starts the next render the moment one ends instead of after the
    # hand-over (download, slot release, next submission): docs/benchmarks.md measures it.
    slots: int = Field(
        2,
        ge=1,
        description="Prompts this server holds at once, running or queued (2: the next one "
        "waits in ComfyUI's queue, so the GPU never idles between renders)",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection")
    read_timeout_s: float = Field(30.0, gt=0, description="Seconds to wait for an answer")
    render_timeout_s: float = Field(
        1800.0, gt=0, description="Seconds a prompt may take, queue wait included"
    )
    poll_interval_s: float = Field(
        2.0, gt=0, description="Seconds between /queue + /history checks while following"
    )
    unreachable_grace_s: float = Field(
        60.0, gt=0, description="Seconds the server may be unreachable while following"
    )
    max_output_bytes: int = Field(
        2 * 1024**3, ge=1, description="Size cap per downloaded output file, in bytes"
    )
    concurrency_limit_name: str | None = Field(
        None,
        description="Prefect global concurrency limit for the slots (default comfyui:<host:port>)",
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {value!r}")
        if parts.username or parts.password:
            raise ValueError("base_url must not carry credentials: use auth_token")
        return value.strip().rstrip("/")

    # -- identity --------------------------------------------------------------------------
    @property
    def concurrency_limit(self) -> str:
        """The name of this server's global concurrency limit. Derived from host:port by
        default, so every block pointing at one machine shares one limit."""
        if self.concurrency_limit_name:
            return self.concurrency_limit_name
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.hostname}:{port}{parts.path.rstrip('/')}"
        return "comfyui:" + _LIMIT_NAME_BANNED.sub("_", where)

    def client(self) -> ComfyUIClient:
        token = self.auth_token.get_secret_value() if self.auth_token else ""
        value = f"{self.auth_scheme} {token}".strip() if self.auth_scheme else token
        return ComfyUIClient(
            ClientSettings(
                base_url=self.base_url,
                auth_header=self.auth_header,
                auth_value=SecretStr(value) if token else None,
                connect_timeout_s=self.connect_timeout_s,
                read_timeout_s=self.read_timeout_s,
                render_timeout_s=self.render_timeout_s,
                poll_interval_s=self.poll_interval_s,
                unreachable_grace_s=self.unreachable_grace_s,
                max_output_bytes=self.max_output_bytes,
            )
        )

    # -- client methods --------------------------------------------------------------------
    async def submit(
        self, graph: dict[str, Any], prompt_id: str, *, extra_data: dict[str, Any] | None = None
    ) -> Submission:
        """Queue an API-format graph under `prompt_id` (see `prompt_id_for`); if the server
        already knows that id, re-attach instead of rendering again."""
        return await self.client().submit(graph, prompt_id, extra_data=extra_data)

    async def follow(
        self, prompt_id: str, *, raise_on_failure: bool = True
    ) -> AsyncIterator[ProgressEvent]:
        """Progress events until `PromptDone`; raises the typed error after it on failure."""
        async for event in self.client().follow(prompt_id, raise_on_failure=raise_on_failure):
            yield event

    async def render(
        self,
        graph: dict[str, Any],
        prompt_id: str,
        *,
        on_event: Callable[[ProgressEvent], Any] | None = None,
        extra_data: dict[str, Any] | None = None,
        raise_on_failure: bool = True,
    ) -> RenderResult:
        """Submit (or re-attach) and follow to the end; `on_event` sees every event."""
        return await self.client().render(
            graph,
            prompt_id,
            on_event=on_event,
            extra_data=extra_data,
            raise_on_failure=raise_on_failure,
        )

    async def result(self, prompt_id: str) -> RenderResult:
        """A finished prompt's outputs and outcome, from `/history`."""
        return await self.client().result(prompt_id)

    async def lookup(self, prompt_id: str) -> PromptState:
        """Whether the prompt is queued, running, done or unknown to this server."""
        return await self.client().lookup(prompt_id)

    async def download(
        self, output: OutputFile, dest_dir: Path, *, max_bytes: int | None = None
    ) -> DownloadedFile:
        """Stream one output file into `dest_dir`: path, size and sha256 back."""
        return await self.client().download(output, dest_dir, max_bytes=max_bytes)

    async def download_all(self, result: RenderResult, dest_dir: Path) -> list[DownloadedFile]:
        return await self.client().download_all(result, dest_dir)

    async def cancel(self, prompt_id: str) -> CancelOutcome:
        """Interrupt the prompt if it runs, take it off the queue if it waits."""
        return await self.client().cancel(prompt_id)

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        return await self.client().object_info(class_type)

    async def system_stats(self) -> ServerEnvironment:
        return await self.client().system_stats()

    async def health(self) -> HealthReport:
        return await self.client().health()


__all__ = [
    "CancelOutcome",
    "ComfyUIAuthError",
    "ComfyUICancelled",
    "ComfyUIConcurrencyLimitMissing",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIOutputError",
    "ComfyUIOutputTooLarge",
    "ComfyUIPool",
    "ComfyUIPoolBusy",
    "ComfyUIPromptLost",
    "ComfyUIProtocolError",
    "ComfyUIRenderTimeout",
    "ComfyUIServer",
    "ComfyUITransientError",
    "ComfyUIUnavailable",
    "ComfyUIValidationError",
    "DownloadedFile",
    "ExecutionFailure",
    "HealthReport",
    "NodeError",
    "NodeExecuted",
    "NodeExecuting",
    "NodeProgress",
    "NodesCached",
    "OutputFile",
    "ProgressEvent",
    "PromptDone",
    "PromptFailed",
    "PromptInterrupted",
    "PromptQueued",
    "PromptStarted",
    "PromptState",
    "PromptSucceeded",
    "RenderResult",
    "ServerEnvironment",
    "Submission",
    "check_api_graph",
    "client_id_for",
    "ensure_concurrency_limits",
    "prompt_id_for",
]
