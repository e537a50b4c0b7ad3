"""Images and clips as the metrics take them: RGB PIL images and T x H x W x 3 uint8 arrays."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from db.image_files import ImageFileError, load_image_file, open_image_file
from tasks.scoring.loading.errors import FrameInputError

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray
FramesLike = np.ndarray | Sequence[ImageLike] | str | os.PathLike[str]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def as_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image of an already loaded picture (no checks: see ``load_image``)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(image)


def as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An H x W x 3 array of an already loaded picture (no checks: see ``load_image``)."""
    return image if isinstance(image, np.ndarray) else np.asarray(as_pil(image))


def _natural_key(path: Path) -> list[Any]:
    # frame_2 before frame_10, as renders are numbered without padding.
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def _array_to_rgb(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise FrameInputError(f"{where}: expected uint8 pixels (0-255), got dtype {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.ndim not in (3, 4) or array.shape[-1] not in (3, 4):
        raise FrameInputError(f"{where}: expected H x W x 3 pixels, got shape {array.shape}")
    return array[..., :3]


def load_image(image: ImageLike, *, where: str = "image") -> Image.Image:
    """An RGB PIL image from a path, a PIL image or an H x W x 3 uint8 array."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(_array_to_rgb(image, where)))
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FrameInputError(f"{where}: no such image file: {path}")
        try:
            return load_image_file(path, "RGB")
        except ImageFileError as exc:
            raise FrameInputError(f"{where}: {exc}") from None
    raise FrameInputError(f"{where}: expected a path, PIL image or array, got {type(image)!r}")


def _frames_from_video(path: Path) -> list[np.ndarray]:
    try:
        import cv2
    except ImportError as exc:
        raise FrameInputError(f"{path}: reading video needs opencv-python") from exc
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise FrameInputError(f"{path}: no frames could be decoded")
    return frames


def _frames_from_path(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )
        if not files:
            raise FrameInputError(f"{path}: folder holds no frame images ({IMAGE_SUFFIXES})")
        return [np.asarray(load_image(f, where=str(f))) for f in files]
    if not path.is_file():
        raise FrameInputError(f"no such clip file or folder: {path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _frames_from_video(path)
    try:
        # Animated webp / png / gif, or a single still; each frame within the pixel cap.
        with open_image_file(path) as opened:
            return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(opened)]
    except ImageFileError as exc:
        raise FrameInputError(str(exc)) from None
    except OSError as exc:
        raise FrameInputError(f"{path}: not a readable video or animated image ({exc})") from exc


def load_frames(frames: FramesLike) -> np.ndarray:
    """A clip as one T x H x W x 3 uint8 array: from such an array, a list of images, a video
    file, an animated image, or a folder of frame images (natural order)."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:  # T x H x W grey
            frames = frames[..., None].repeat(3, axis=-1)
        if frames.ndim != 4:
            raise FrameInputError(f"clip: expected T x H x W x 3 pixels, got shape {frames.shape}")
        return np.ascontiguousarray(_array_to_rgb(frames, "clip"))
    if isinstance(frames, str | os.PathLike):
        items: list[np.ndarray] = _frames_from_path(Path(frames))
    else:
        items = [
            _array_to_rgb(f, f"frame {i}")
            if isinstance(f, np.ndarray)
            else np.asarray(load_image(f, where=f"frame {i}"))
            for i, f in enumerate(frames)
        ]
    if not items:
        raise FrameInputError("clip: no frames")
    size = items[0].shape
    for i, item in enumerate(items):
        if item.shape != size:
            raise FrameInputError(f"clip: frame {i} is {item.shape[:2]}, frame 0 is {size[:2]}")
    return np.stack(items)
