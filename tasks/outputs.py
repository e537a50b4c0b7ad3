"""What a renderer hands back, whichever renderer it is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
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


def canonical_sha256(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def describe_file(path: Path, kind: str, mime: str) -> RenderOutput:
    """sha256, size and picture dimensions of a stored output."""
    from PIL import Image

    data = path.read_bytes()
    width = height = frames = None
    try:
        with Image.open(path) as im:
            width, height = im.size
            frames = getattr(im, "n_frames", 1)
    except OSError:
        pass
    return RenderOutput(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        mime=mime,
        size_bytes=len(data),
        kind=kind,
        width=width,
        height=height,
        frames=frames,
    )
