"""Turning names a ComfyUI server reports into local paths that stay inside a folder.

A server's filenames and subfolders are untrusted (a compromised server, a buggy custom
node): `../`, absolute paths, backslashes, NUL and control characters, drive letters,
reserved device names, huge names and symlinks planted in the artifact folder must never
make us write outside it.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

from blocks.comfyui_errors import ComfyUIOutputError
from blocks.comfyui_models import OutputFile

MAX_COMPONENT_BYTES = 120
MAX_SUBFOLDER_DEPTH = 8
_SEPARATORS = re.compile(r"[\\/]+")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f:*?\"<>|]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_component(raw: str, *, fallback: str | None = None) -> str | None:
    """One path component that is a plain name: no separators, no dot-only names, no
    control characters, not too long. Altered names get a hash of the original so two
    different hostile names never land on the same file."""
    text = unicodedata.normalize("NFC", raw)
    text = _UNSAFE_CHARS.sub("_", text.replace("/", "_").replace("\\", "_"))
    text = text.strip(" .")
    if not text:
        return fallback
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    if text != raw or len(text.encode()) > MAX_COMPONENT_BYTES:
        stem, dot, suffix = text.rpartition(".")
        if not dot or len(suffix) > 16:
            stem, suffix = text, ""
        budget = MAX_COMPONENT_BYTES - len(suffix.encode()) - 10
        stem = stem.encode()[:budget].decode("utf-8", "ignore").rstrip(" .") or "output"
        text = f"{stem}-{_short_hash(raw)}" + (f".{suffix}" if suffix else "")
    return text


def safe_relative_path(output: OutputFile) -> PurePosixPath:
    """`<subfolder parts>/<filename>`, each part cleaned, relative and non-empty."""
    parts = [p for p in (safe_component(x) for x in _SEPARATORS.split(output.subfolder)) if p]
    parts = parts[:MAX_SUBFOLDER_DEPTH]
    name = safe_component(output.filename, fallback=f"output-{_short_hash(output.filename)}")
    assert name is not None
    return PurePosixPath(*parts, name)


def prepare_target(dest_dir: Path, relative: PurePosixPath) -> Path:
    """Create the folders for `relative` under `dest_dir` and return the file path, refusing
    to pass through any symlink or to end up outside `dest_dir`."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ComfyUIOutputError(f"refusing to write through a symlink at {current}")
        if current.exists() and not current.is_dir():
            raise ComfyUIOutputError(f"{current} exists and is not a folder")
        current.mkdir(exist_ok=True)
    target = current / relative.name
    if target.exists() and target.is_dir() and not target.is_symlink():
        raise ComfyUIOutputError(f"{target} is a folder, not a file")
    # Belt and braces: whatever happened above, the folder we write into is under the root.
    if not target.parent.resolve().is_relative_to(root):
        raise ComfyUIOutputError(f"output path {relative} escapes {root}")
    return target


def open_temporary(target: Path) -> tuple[int, Path]:
    """A fresh file next to `target` (O_EXCL, never following links); renamed over
    `target` when complete so a half-written output never has the final name."""
    for attempt in range(100):
        candidate = target.with_name(f".{target.name[:60]}.{os.getpid()}.{attempt}.part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.open(candidate, flags, 0o644), candidate
        except FileExistsError:
            continue
    raise ComfyUIOutputError(f"cannot create a temporary file next to {target}")
