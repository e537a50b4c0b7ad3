"""Hostile files built in the test: image bombs, broken images, YAML alias bombs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: a few KB on disk, gigabytes
    once decoded as RGBA. Compressed row by row so building it costs no memory."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )
    return path


def truncated_png(source: Path, path: Path) -> Path:
    """The first half of a real PNG: its header reads, its pixels do not."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def alias_bomb(levels: int = 9, fan: int = 9) -> str:
    """The "billion laughs": ~1 KB of YAML aliases expanding to fan**levels values."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * fan)}]"]
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * fan)}]")
    return "\n".join(lines)
