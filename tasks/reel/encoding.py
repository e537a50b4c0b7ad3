"""Writing the reel: H.264 in MP4, yuv420p (what every browser plays), through PyAV.

The encoder runs with fixed settings and the container with FFmpeg's bit-exact flag, so the
same frames give the same bytes: a re-export with no new renders is identical.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

CODEC = "libx264"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "20"}


class ReelCodecError(Exception):
    """The media library cannot write the reel; the message says what is missing."""


def check_codec(codec: str | None = None) -> None:
    """One clear message when PyAV or its encoder is missing, before anything is decoded."""
    codec = codec or CODEC
    try:
        import av
    except ImportError:
        raise ReelCodecError(
            "the reel needs PyAV: install it with `pip install av` (the wheel ships FFmpeg)"
        ) from None
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001  (UnknownCodecError and friends)
        raise ReelCodecError(
            f"the media library (PyAV {av.__version__}) has no {codec} encoder: install a PyAV "
            "build whose FFmpeg includes it (the wheels on PyPI do)"
        ) from None


class ReelWriter:
    """Frames in, an MP4 out: ``with ReelWriter(path, fps, size) as w: w.write(image)``."""

    def __init__(
        self, path: Path, fps: int, size: tuple[int, int], codec: str | None = None
    ) -> None:
        codec = codec or CODEC
        check_codec(codec)
        import av

        self.frames = 0
        self._container = av.open(
            str(path), "w", format="mp4", options={"fflags": "+bitexact"}
        )
        self._stream = self._container.add_stream(
            codec, rate=Fraction(fps), options=dict(ENCODER_OPTIONS)
        )
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._size = size
        # A keyframe held for a cut's length is the same picture frame after frame: it is
        # converted to the encoder's YUV once, and that frame is given again (the encoder keeps
        # its own reference to the pixels, so only the timestamp changes). Most of an episode's
        # reel is held keyframes: the conversion was a third of its encoding time.
        self._last: tuple[Image.Image, Any] | None = None

    def write(self, image: Image.Image) -> None:
        import av

        if image.size != self._size:
            raise ValueError(f"frame {self.frames} is {image.size}, the reel is {self._size}")
        if self._last is None or self._last[0] is not image:
            rgb = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
            self._last = (image, rgb.reformat(format=self._stream.pix_fmt))
        frame = self._last[1]
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def __enter__(self) -> ReelWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
