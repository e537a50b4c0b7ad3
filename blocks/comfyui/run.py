"""One prompt run to its end: take a server slot (or use the one server given), submit or
re-attach, follow with live progress, download every output and read the server's
environment (`render_on`, `PromptRun`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from blocks.comfyui.models import DownloadedFile, PromptResult, ServerEnvironment
from blocks.comfyui.pool import ComfyUIPool
from blocks.comfyui.progress import RenderProgress
from blocks.comfyui.server import ComfyUIServer


class PromptRun(BaseModel):
    """What one prompt run produced on which server, with what is needed to reproduce it
    (ComfyUI's side of a render: the project's record is `tasks.outputs.RenderResult`)."""

    server: str
    prompt_id: str
    result: PromptResult
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
) -> PromptRun:
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
        result = await server.get_client().render(graph, prompt_id, on_event=progress)
    client = server.get_client()
    environment = await client.system_stats()
    files = await client.download_all(result, dest_dir)
    return PromptRun(
        server=server.base_url,
        prompt_id=prompt_id,
        result=result,
        files=files,
        environment=environment,
    )
