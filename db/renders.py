"""What a render hands back, whichever renderer made it: the one shape that travels from the
renderer to the database (db/jobs.py `record_render` stores it as it is).

No ORM here: renderers, tasks and the database all speak this model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RenderOutput(BaseModel):
    path: str
    sha256: str
    mime: str
    size_bytes: int
    kind: str = "image"  # image | animation
    width: int | None = None
    height: int | None = None
    frames: int | None = None


class RenderTimes(BaseModel):
    """Seconds of one render attempt (None: not measured, e.g. a re-attach to a finished
    prompt has no queue wait of ours)."""

    queue_wait_s: float | None = None
    execution_s: float | None = None
    download_s: float | None = None
    outage_s: float | None = None


class RenderResult(BaseModel):
    renderer: str  # "comfyui" or "animatic": recorded with every job, never disguised
    server: str | None = None
    prompt_id: str | None = None
    outputs: list[RenderOutput] = Field(default_factory=list)
    # The exact thing submitted: a ComfyUI API graph, or the animatic's panel spec.
    workflow: dict[str, Any] = Field(default_factory=dict)
    workflow_sha256: str = ""
    environment: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    times: RenderTimes = Field(default_factory=RenderTimes)

    @property
    def paths(self) -> list[str]:
        return [o.path for o in self.outputs]
