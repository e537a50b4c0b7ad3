"""Synthetic clips whose motion a viewer would judge at a glance."""

from __future__ import annotations

import numpy as np

SIZE = 96


def background(size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], axis=-1).astype(
        np.uint8
    )


def disk_clip(xs: np.ndarray | list[float], size: int = SIZE, radius: int = 12) -> np.ndarray:
    """A yellow disk over a gradient, its centre at x = xs[t] in frame t."""
    yy, xx = np.mgrid[0:size, 0:size]
    bg = background(size)
    frames = []
    for cx in xs:
        frame = bg.copy()
        frame[(xx - cx) ** 2 + (yy - size / 2) ** 2 < radius**2] = (250, 240, 40)
        frames.append(frame)
    return np.stack(frames)


def linear_motion(frames: int = 24, size: int = SIZE) -> np.ndarray:
    return disk_clip(np.linspace(15, size - 15, frames), size)


def jittery_motion(frames: int = 24, size: int = SIZE, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return disk_clip(rng.uniform(15, size - 15, frames), size)
