"""Writing the reel: H.264 in MP4, yuv420p (what every browser plays), through PyAV.

The encoder runs with fixed settings and the container with FFmpeg's bit-exact flag, so the
same frames give the same bytes: a re-export with no new renders is identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
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


@dataclass(frozen=True)
class Packet:
    """One encoded frame (H.264, Annex B) and its times in frames of the segment."""

    pts: int
    dts: int
    keyframe: bool
    data: bytes


def _configure(context, fps: int, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """The one set of encoder settings: every segment's encoder and the reel's stream, whose
    header the muxer takes from it, must agree for the segments' packets to play in it."""
    from av.codec.context import Flags

    context.width, context.height = size
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, fps)
    context.framerate = Fraction(fps)
    # The stream's parameters go in the MP4's header, as its muxer would ask of the encoder.
    context.flags |= Flags.global_header
    context.options = dict(ENCODER_OPTIONS)
    # One thread per encoder, so that the same frames give the same bytes on any machine; the
    # segments of a reel are encoded side by side instead.
    context.thread_count = 1


def encode(frames: list[Image.Image], fps: int, size: tuple[int, int]) -> list[Packet]:
    """The frames encoded on their own: the first packet a keyframe, times from 0."""
    import av

    context = av.CodecContext.create(CODEC, "w")  # build_reel has checked it exists
    _configure(context, fps, size)
    packets: list[Packet] = []

    def keep(encoded) -> None:  # type: ignore[no-untyped-def]
        packets.extend(
            Packet(int(p.pts), int(p.dts), bool(p.is_keyframe), bytes(p)) for p in encoded
        )

    # A keyframe held for a cut's length is the same picture frame after frame: it is
    # converted to the encoder's YUV once, and that frame is given again (the encoder keeps
    # its own reference to the pixels, so only the timestamp changes).
    last: tuple[Image.Image, Any] | None = None
    for index, image in enumerate(frames):
        if image.size != size:
            raise ValueError(f"frame {index} is {image.size}, the reel is {size}")
        if last is None or last[0] is not image:
            rgb = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
            # One thread, as the encoder: swscale's own slice threads (its default) are one
            # more thing whose timing could reach the bytes, and a segment is small.
            last = (image, rgb.reformat(format="yuv420p", threads=1))
        frame = last[1]
        frame.pts = index
        keep(context.encode(frame))
    keep(context.encode(None))
    return packets


def write_mp4(path: Path, fps: int, size: tuple[int, int], parts: list[list[Packet]]) -> int:
    """Packets encoded by ``encode`` in one MP4, each part after the one before; the number of
    frames. Nothing is encoded again: an unchanged part gives the same bytes."""
    import av

    start = 0
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(CODEC, rate=Fraction(fps))
        _configure(stream.codec_context, fps, size)
        base = Fraction(1, fps)
        for part in parts:
            for encoded in part:
                packet = av.Packet(encoded.data)
                packet.pts, packet.dts = encoded.pts + start, encoded.dts + start
                packet.time_base = base
                packet.is_keyframe = encoded.keyframe
                packet.stream = stream
                container.mux(packet)
            start += len(part)
    return start
