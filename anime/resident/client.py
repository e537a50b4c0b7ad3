"""The `anime` console script. A database command goes to the resident process when one is up
(a fork there, instead of a second of imports here); otherwise it runs here, as every other
command does, and a resident process is started in the background for the next one."""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

from anime.resident import protocol

# The child says which pid it is within this many seconds of the connection, or never will.
ANSWER_TIMEOUT_S = 10.0
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def main() -> None:
    args = sys.argv[1:]
    if not protocol.enabled() or protocol.command_of(args) is None or not hasattr(os, "fork"):
        _run_here()
    folder = protocol.socket_dir()
    if folder is None:
        _run_here()
    path = protocol.socket_path(folder)
    code = _run_resident(path, args)
    if code is None:
        _start_resident(path)
        _run_here()
    sys.exit(code)


def _run_here() -> NoReturn:
    from anime.cli import app

    app(prog_name="anime")  # exits, as a click app in standalone mode does
    sys.exit(0)


def _run_resident(path, args: list[str]) -> int | None:  # type: ignore[no-untyped-def]
    """The command's exit status, run by the resident process; None when there is none to run
    it (not started, gone, or holding code that changed since), so it must run here."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    with conn:
        request = json.dumps(
            {
                "argv": args,
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "umask": _umask(),
                "streams": [_stream_of(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
            }
        ).encode()
        fds = array.array("i", [0, 1, 2])
        try:
            conn.sendmsg(
                [len(request).to_bytes(4, "big")],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
            )
            conn.sendall(request)
        except OSError:
            return None  # it went away between connect and send: nothing ran
        conn.settimeout(ANSWER_TIMEOUT_S)
        replies = conn.makefile("rb")
        try:
            first = protocol.read_line(replies)
        except (TimeoutError, OSError):
            _fail(
                f"the resident anime process at {path} does not answer; stop it with "
                f"`anime resident stop`, or set {protocol.SWITCH}=0"
            )
        if first is None or first[0] == protocol.STALE:
            return None  # nothing ran: the resident process exits, and this one runs it
        pid = int(first[1])  # type: ignore[arg-type]
        for signum in FORWARDED:
            signal.signal(signum, lambda sig, _frame: _forward(pid, sig))
        conn.settimeout(None)
        reply = protocol.read_line(replies)  # a forwarded signal does not cut it (PEP 475)
        if reply is None or reply[0] != protocol.EXIT:
            _fail(f"the command's process (pid {pid}) ended without an exit status")
        return int(reply[1])  # type: ignore[arg-type]


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stream_of(stream) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {
        "encoding": getattr(stream, "encoding", None),
        "errors": getattr(stream, "errors", None),
    }


def _start_resident(path) -> None:  # type: ignore[no-untyped-def]
    """A resident process for the next command, detached: it outlives this one, holds no
    terminal, and exits after ANIME_RESIDENT_IDLE_S without a command."""
    import subprocess

    boot = (
        "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from anime.resident.server import serve; serve(sys.argv[2])"
    )
    try:
        with open(f"{path}.log", "wb") as log:  # what the last one started said
            subprocess.Popen(
                [sys.executable, "-c", boot, json.dumps(sys.path), str(path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
    except OSError:
        pass  # the next command runs here too; nothing is lost


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
