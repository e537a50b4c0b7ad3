"""A cut's stored footage as frames at the reel's fps and size.

Pictures and animated WEBP/GIF are read with Pillow, video containers with PyAV. Retiming
samples the source at each reel frame's time, so a clip keeps its speed at any reel fps and a
keyframe is held for the cut's whole duration.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageOps

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi"}


class FootageError(Exception):
    """The stored footage cannot be shown; the message says why (it goes on the slate)."""


def _pillow_frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as im:
        frames = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            frames.append(im.convert("RGB"))
    return frames


def _video_frames(path: Path) -> list[Image.Image]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def decode(path: str) -> list[Image.Image]:
    """Every frame of a stored output, or FootageError naming the file and the problem."""
    source = Path(path)
    if not source.is_file():
        raise FootageError(f"{source.name} is missing on this machine")
    try:
        frames = (
            _video_frames(source)
            if source.suffix.lower() in VIDEO_SUFFIXES
            else _pillow_frames(source)
        )
    except Exception as exc:  # noqa: BLE001  (Pillow and FFmpeg raise many kinds; all mean this)
        raise FootageError(f"{source.name} cannot be decoded: {exc}") from None
    if not frames:
        raise FootageError(f"{source.name} has no frames")
    return frames


def fit(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The frame at the reel's size, letterboxed in black where the aspect ratio differs."""
    if frame.size == size:
        return frame
    return ImageOps.pad(frame, size, method=Image.Resampling.BICUBIC, color=(0, 0, 0))


def retime(source: list[Image.Image], source_fps: float, count: int, fps: int) -> list[Image.Image]:
    """``count`` frames at ``fps`` from a clip at ``source_fps``; the last frame holds."""
    last = len(source) - 1
    return [source[min(last, math.floor(i * source_fps / fps + 1e-9))] for i in range(count)]
