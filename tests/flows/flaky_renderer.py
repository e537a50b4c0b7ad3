"""A third renderer, as a studio would add one: one module, one line in RENDERERS. It is the
animatic behind a connection that drops once for every job, as a flaky cloud API would."""

from __future__ import annotations

from typing import Any

from blocks.comfyui import ComfyUIUnavailable
from db.renders import RenderResult
from tasks.rendering.animatic import AnimaticRenderer
from tasks.rendering.request import RenderRequest

dropped: list[int] = []  # job ids whose first try failed


class FlakyRenderer(AnimaticRenderer):
    name = "flaky"

    async def execute(
        self, workflow: dict[str, Any], request: RenderRequest, *, new_prompt: bool
    ) -> RenderResult:
        if request.job_id not in dropped:
            dropped.append(request.job_id)
            raise ComfyUIUnavailable("connection reset by peer", server="flaky://render")
        return await super().execute(workflow, request, new_prompt=new_prompt)
