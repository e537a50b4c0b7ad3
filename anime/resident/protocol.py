"""What the console script and the resident process agree on: which commands go to the resident
process, where its socket lives, and how one request and its replies are framed.

Standard library only: the console script imports this before anything else, at every start."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

# Commands that only read or write the database (and files): the resident process has imported
# what they need. Anything else (render, server, comfyui...) runs in the console script's own
# process as before: those import Prefect or torch, hold long runs, and gain nothing from a fork.
RESIDENT_COMMANDS = frozenset({"story", "status"})
# Options of the root app that may come before the command.
ROOT_OPTIONS = frozenset({"--debug"})

SWITCH = "ANIME_RESIDENT"  # "0", "off", "false", "no": never use the resident process
IDLE = "ANIME_RESIDENT_IDLE_S"  # how long the resident process waits for a command, then exits
DEFAULT_IDLE_S = 900.0

# Replies, one line each: the child's pid (to forward signals to), the command's exit status,
# or "the code changed since the resident process imported it" (it exits; run in-process).
PID, EXIT, STALE = "pid", "exit", "stale"


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(SWITCH, "").strip().lower() not in ("0", "off", "false", "no")


def command_of(args: list[str]) -> str | None:
    """The command `anime ARGS` runs, when it is one the resident process serves."""
    rest = list(args)
    while rest and rest[0] in ROOT_OPTIONS:
        rest.pop(0)
    if not rest or rest[0] not in RESIDENT_COMMANDS:
        return None
    if any(arg in ("--install-completion", "--show-completion") for arg in rest):
        return None
    return rest[0]


def socket_dir() -> Path | None:
    """A folder only this user can enter, or None when none can be made safely."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime).absolute() / "anime" if runtime and Path(runtime).is_dir() else None
    folder = base or Path("/tmp") / f"anime-resident-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=False, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    # Someone else's folder (or a link to one) at that name: do not talk through it.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return folder


# Variables that the modules the resident process imports read once, at import (psycopg's
# implementation, pgserver's lock folder, tempfile's folder, the locale...): a caller whose
# values differ gets a resident process of its own, as it would get a process of its own.
# tests/ops/test_resident.py checks that every variable read while importing is named here.
IMPORT_TIME_ENV = (
    "DISABLE_SQLALCHEMY_CEXT",
    "HOME",
    "LANG",
    "LC_",
    "PGSERVER_",
    "PILLOW_",
    "PSUTIL_",
    "PSYCOPG_",
    "PYDANTIC_",
    "PYTHON",
    "_PYTHON",
    "TEMP",
    "TMP",
    "TYPER_",
    "TZ",
    "XDG_",
)


def socket_path(folder: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """One resident process per interpreter, import path and import-time environment: another
    virtual environment, checkout or PYTHONPATH gets its own, so none ever runs code, or
    settings, that another imported."""
    imported_with = sorted((k, v) for k, v in environ.items() if k.startswith(IMPORT_TIME_ENV))
    key = json.dumps([sys.executable, sys.path, imported_with]).encode()
    return folder / f"{hashlib.sha256(key).hexdigest()[:16]}.sock"


def send_line(conn: socket.socket, kind: str, value: object = None) -> None:
    conn.sendall(json.dumps([kind, value]).encode() + b"\n")


def read_line(stream) -> tuple[str, object] | None:  # type: ignore[no-untyped-def]
    """The next reply from a file made with conn.makefile("rb"), or None at the end."""
    line = stream.readline()
    if not line:
        return None
    kind, value = json.loads(line)
    return kind, value
