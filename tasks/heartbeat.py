"""This process's heartbeat: from the first job it takes up until it exits, a daemon thread
writes it every `HEARTBEAT_S` seconds (db/heartbeats.py). A machine cannot tell whether a pid
on another machine lives; it can tell that the process stopped beating (tasks/recovery.py)."""

from __future__ import annotations

import logging
import threading

from db import heartbeats as db_heartbeats
from db.engine import session_scope
from db.jobs import RunProcess

HEARTBEAT_S = 10.0
# A run on another machine is crashed once its process has not beaten for this long: many
# beats missed, so a slow database moment does not make a live run a crash.
SILENT_CRASHED_S = 120.0

_started: set[RunProcess] = set()
_lock = threading.Lock()
_log = logging.getLogger(__name__)


def _beat(process: RunProcess) -> None:
    with session_scope() as session:
        db_heartbeats.beat(session, process.host, process.pid, process.started)


def keep_beating(process: RunProcess) -> None:
    """On the first call, beat now (before a job run names this process) and start beating
    every HEARTBEAT_S s until the process exits. Later calls find it beating already: a beat
    per job would be one more transaction on every cut's way to its render."""
    with _lock:
        if process in _started:
            return
        _beat(process)
        _started.add(process)

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(HEARTBEAT_S):
            try:
                _beat(process)
            except Exception as exc:  # noqa: BLE001 - a database hiccup: beat again later
                _log.debug("heartbeat not written: %s", exc)

    threading.Thread(target=loop, name="anime-heartbeat", daemon=True).start()
