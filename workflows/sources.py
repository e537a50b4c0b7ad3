"""Reading a workflow out of a file: editor (UI) JSON, API JSON, or the metadata ComfyUI
writes into its outputs (PNG ``prompt``/``workflow`` text chunks; WebP EXIF and video
container tags carrying the same JSON)."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workflows.errors import WorkflowError

MAX_FILE_BYTES = 64 * 1024 * 1024  # larger than any workflow or the clips that carry one
JSON_SUFFIXES = (".json",)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEDIA_SUFFIXES = (".png", ".webp", ".mp4", ".webm", ".mkv", ".mov", ".gif", ".avif", ".flac")


class WorkflowSourceError(WorkflowError, ValueError):
    """A file that holds no usable workflow; the message names the file and why."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class WorkflowSource:
    path: Path
    format: Literal["ui", "api"]
    data: dict[str, Any]
    carrier: str  # "json", "png", "webp", "video"


def is_api_graph(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in data.values())
    )


def _classify(path: Path, data: Any, carrier: str) -> WorkflowSource:
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return WorkflowSource(path, "ui", data, carrier)
    if isinstance(data, dict) and is_api_graph(data.get("prompt")):  # {"prompt": {...}} bodies
        return WorkflowSource(path, "api", data["prompt"], carrier)
    if is_api_graph(data):
        return WorkflowSource(path, "api", data, carrier)
    if isinstance(data, dict) and data:
        bad = next(
            (k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)), None
        )
        raise WorkflowSourceError(
            path,
            "not a ComfyUI workflow: neither an editor save (a 'nodes' list) nor an API graph "
            f"(entry {bad!r} has no 'class_type')",
        )
    raise WorkflowSourceError(path, "not a ComfyUI workflow: expected a JSON object")


def _parse_json(path: Path, text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowSourceError(
            path, f"{what} is not valid JSON (truncated?): {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None  # fmt: skip


def png_text_chunks(path: Path, blob: bytes) -> dict[str, str]:
    """tEXt, zTXt and iTXt chunks of a PNG, by keyword."""
    chunks: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos < len(blob):
        if pos + 8 > len(blob):
            raise WorkflowSourceError(path, f"truncated PNG (chunk header at byte {pos})")
        length, kind = struct.unpack(">I4s", blob[pos : pos + 8])
        data = blob[pos + 8 : pos + 8 + length]
        if len(data) < length:
            raise WorkflowSourceError(path, f"truncated PNG ({kind.decode('latin-1')} chunk)")
        pos += 12 + length
        try:
            if kind == b"tEXt":
                key, _, value = data.partition(b"\x00")
                chunks[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = data.partition(b"\x00")
                chunks[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = data.partition(b"\x00")
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                chunks[key.decode("latin-1")] = (
                    zlib.decompress(text) if compressed else text
                ).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError) as exc:
            raise WorkflowSourceError(path, f"damaged PNG text chunk: {exc}") from None
        if kind == b"IEND":
            break
    return chunks


def _embedded_json(blob: bytes, key: bytes) -> Any:
    """The JSON object right after ``key:`` (WebP EXIF) or a ``key`` tag (video containers)."""
    decoder = json.JSONDecoder()
    start = 0
    while (at := blob.find(key, start)) >= 0:
        start = at + len(key)
        brace = blob.find(b"{", start, start + 16)
        if brace < 0:
            continue
        text = blob[brace : brace + MAX_FILE_BYTES].decode("utf-8", errors="replace")
        try:
            value, _ = decoder.raw_decode(text)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def read_workflow(path: str | Path) -> WorkflowSource:
    """The workflow a file holds; raises WorkflowSourceError naming the file and the cause."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorkflowSourceError(path, f"cannot read: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise WorkflowSourceError(
            path, f"{size / 2**20:.0f} MiB is too large for a workflow (limit "
            f"{MAX_FILE_BYTES // 2**20} MiB)"
        )  # fmt: skip
    if size == 0:
        raise WorkflowSourceError(path, "empty file")
    blob = path.read_bytes()
    if blob.startswith(PNG_SIGNATURE):
        chunks = png_text_chunks(path, blob)
        for key, fmt in (("prompt", "api"), ("workflow", "ui")):
            if key in chunks:
                data = _parse_json(path, chunks[key], f"the PNG's {key!r} text chunk")
                source = _classify(path, data, "png")
                if source.format == fmt:
                    return source
        raise WorkflowSourceError(
            path, "PNG without ComfyUI metadata (no 'prompt' or 'workflow' text chunk)"
        )
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES or blob.lstrip()[:1] in (b"{", b"["):
        try:
            text = blob.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkflowSourceError(path, "not UTF-8 text, so not a workflow JSON") from None
        return _classify(path, _parse_json(path, text, "the file"), "json")
    carrier = "webp" if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP" else "video"
    for key in (b"prompt", b"workflow"):
        data = _embedded_json(blob, key)
        if data is not None:
            try:
                return _classify(path, data, carrier)
            except WorkflowSourceError:
                continue
    kind = "WebP image" if carrier == "webp" else f"{suffix or 'binary'} file"
    raise WorkflowSourceError(path, f"{kind} without ComfyUI metadata (no embedded workflow)")
