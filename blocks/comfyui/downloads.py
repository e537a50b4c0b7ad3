"""Putting a server's output files on local disk: streamed under a size cap, hashed, renamed
into place only when complete, and at a path that stays inside the destination folder.

A server's filenames and subfolders are untrusted (a compromised server, a buggy custom
node): `../`, absolute paths, backslashes, NUL and control characters, drive letters,
reserved device names, huge names and symlinks planted in the artifact folder must never
make us write outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import httpx

from blocks.comfyui.errors import (
    ComfyUIDownloadStalled,
    ComfyUIOutputError,
    ComfyUIOutputTooLarge,
    ComfyUIUnavailable,
)
from blocks.comfyui.models import DownloadedFile, OutputFile
from blocks.comfyui.transport import Transport

# -- safe paths ------------------------------------------------------------------------------

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


# -- streaming -------------------------------------------------------------------------------


async def download_output(
    transport: Transport,
    http: httpx.AsyncClient,
    output: OutputFile,
    dest_dir: Path,
    max_bytes: int | None,
) -> DownloadedFile:
    """Stream one output into `dest_dir` (never outside it), refusing it over the cap
    (`max_bytes`, else the server's `max_output_bytes`), too slow after the grace period
    (`min_download_bytes_per_s`) or past the deadline (`download_timeout_s`)."""
    server = transport.server
    settings = transport.settings
    cap = max_bytes if max_bytes is not None else transport.settings.max_output_bytes
    target = prepare_target(dest_dir, safe_relative_path(output))
    params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
    shown = f"{output.subfolder}/{output.filename}".lstrip("/")
    what = f"GET /view ({shown!r})"
    try:
        async with (
            _deadline(server, shown, settings.download_timeout_s),
            http.stream("GET", "/view", params=params) as response,
        ):
            if response.status_code == 404:
                raise ComfyUIOutputError(
                    f"output {shown!r} of node {output.node_id} is not on the server",
                    server=server,
                )
            if response.status_code != 200:
                await response.aread()
            transport.check(response, what, (200,), None)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise _too_large(server, output, f"{int(declared)} bytes declared", cap)
            pace = _Pace(
                server, shown, settings.download_grace_s, settings.min_download_bytes_per_s
            )
            return await _stream_to(server, response, output, target, cap, pace)
    except httpx.TimeoutException:
        raise ComfyUIUnavailable(f"{what} timed out", server=server) from None
    except httpx.TransportError as exc:
        raise ComfyUIUnavailable(
            f"{what} failed: {transport.redact(str(exc)) or type(exc).__name__}", server=server
        ) from None


@contextlib.asynccontextmanager
async def _deadline(server: str, shown: str, seconds: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise ComfyUIDownloadStalled(
            f"download of {shown!r} did not finish within its {seconds:g} s deadline "
            "(download_timeout_s); nothing was kept",
            server=server,
        ) from None


class _Pace:
    """The minimum average byte rate a download keeps once its grace period is over."""

    def __init__(self, server: str, shown: str, grace_s: float, min_rate: float) -> None:
        self.server, self.shown = server, shown
        self.grace_s, self.min_rate = grace_s, min_rate
        self.started = time.monotonic()

    def check(self, size: int) -> None:
        elapsed = time.monotonic() - self.started
        if self.min_rate <= 0 or elapsed <= self.grace_s:
            return
        rate = size / elapsed
        if rate < self.min_rate:
            raise ComfyUIDownloadStalled(
                f"download of {self.shown!r} is stalling: {size} bytes in {elapsed:.1f} s "
                f"({rate:.0f} B/s, under the {self.min_rate:g} B/s minimum "
                f"(min_download_bytes_per_s) after the {self.grace_s:g} s grace); "
                "nothing was kept",
                server=self.server,
            )


async def _stream_to(
    server: str,
    response: httpx.Response,
    output: OutputFile,
    target: Path,
    cap: int,
    pace: _Pace,
) -> DownloadedFile:
    fd, temporary = open_temporary(target)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as sink:
            # As the bytes arrive (no chunk size: httpx would hold them until it had that
            # many), so a trickle is seen by the rate check at once.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _too_large(server, output, f"more than {cap} bytes streamed", cap)
                pace.check(size)
                digest.update(chunk)
                sink.write(chunk)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return DownloadedFile(
        output=output,
        path=target,
        size=size,
        sha256=digest.hexdigest(),
        content_type=response.headers.get("content-type"),
    )


def _too_large(server: str, output: OutputFile, seen: str, cap: int) -> ComfyUIOutputTooLarge:
    return ComfyUIOutputTooLarge(
        f"output {output.filename!r} of node {output.node_id} is over the {cap}-byte cap "
        f"({seen}); nothing was kept",
        server=server,
    )
