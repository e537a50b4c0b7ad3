"""A stored output described for the database: sha256, size, mime and picture dimensions."""

from __future__ import annotations

import hashlib
from pathlib import Path

from db.renders import RenderOutput


def describe_file(path: Path, kind: str, mime: str) -> RenderOutput:
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
