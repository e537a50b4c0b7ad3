"""One interface for every renderer, and the renderers the pipeline knows by name.

A renderer turns a request into the exact workflow it will run (`workflow`), and runs a
workflow (`execute`): a new render runs what `workflow` built (ComfyUI names its output files
after the prompt there, so the stored graph is the submitted one), a reproduction runs the
stored one as it is. Cuts, character sheets and reproductions all go through `render`
(tasks/rendering/task.py), so each gets the same task retries. A new renderer (a cloud API,
another ComfyUI flavour) is one module with a class like these, named in RENDERERS.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from db.renders import RenderResult
from tasks.rendering.request import RenderRequest


class Renderer(Protocol):
    name: str

    def workflow(self, request: RenderRequest) -> dict[str, Any]:
        """The exact thing this renderer will run for the request, stored with the job."""

    async def execute(
        self, workflow: dict[str, Any], request: RenderRequest, *, new_prompt: bool
    ) -> RenderResult:
        """Run ``workflow`` into ``request.out_dir``. ``new_prompt``: nothing can be running
        for this job yet (a renderer that re-attaches to earlier submissions skips looking)."""


# Name -> the module and class that implement it, imported on first use: a machine that only
# draws animatics never loads ComfyUI's client stack.
RENDERERS: dict[str, tuple[str, str]] = {
    "animatic": ("tasks.rendering.animatic", "AnimaticRenderer"),
    "comfyui": ("tasks.rendering.comfyui", "ComfyUIRenderer"),
}


def renderer_named(name: str) -> Renderer:
    try:
        module, cls = RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown renderer {name!r} (renderers: {', '.join(RENDERERS)})") from None
    return getattr(importlib.import_module(module), cls)()
