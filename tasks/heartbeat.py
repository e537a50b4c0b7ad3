"""This process's heartbeat: from the first job it takes up until it exits, a daemon thread
writes it every `HEARTBEAT_S` seconds (db/heartbeats.py). A machine cannot tell whether a pid
on another machine lives; it can tell that the process stopped beating (tasks/recovery.py)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from db import heartbeats as db_heartbeats
from db.engine import database_generation, get_engine, session_scope
from db.jobs import RunProcess

HEARTBEAT_S = 10.0
# A run on another machine is crashed once its process has not beaten for this long: many
# beats missed, so a slow database moment does not make a live run a crash.
SILENT_CRASHED_S = 120.0

# Each beating process -> the database generation (db/engine.py) its thread writes into.
_beating: dict[RunProcess, int] = {}
_lock = threading.Lock()
_log = logging.getLogger(__name__)


def _beat(engine: Engine, process: RunProcess) -> None:
    with session_scope(engine) as session:
        db_heartbeats.beat(session, process.host, process.pid, process.started)


def beating(process: RunProcess) -> bool:
    """Whether this process beats already, into the database it uses now: checked on the
    event loop, so a cut's way to its render needs no thread to learn it."""
    return _beating.get(process) == database_generation()


def keep_beating(process: RunProcess) -> None:
    """On the first call, beat now (before a job run names this process) and start beating
    every HEARTBEAT_S s until the process exits. Later calls find it beating already: a beat
    per job would be one more transaction on every cut's way to its render.

    The thread keeps to the database it started on: a process that moves to another one
    (the tests do) must not beat into it from an old thread; its next job starts a new one."""
    generation, engine = database_generation(), get_engine()
    with _lock:
        if _beating.get(process) == generation:
            return
        _beat(engine, process)
        _beating[process] = generation

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(HEARTBEAT_S):
            if database_generation() != generation:
                return
            try:
                _beat(engine, process)
            except Exception as exc:  # noqa: BLE001 - a database hiccup: beat again later
                _log.debug("heartbeat not written: %s", exc)

    threading.Thread(target=loop, name="anime-heartbeat", daemon=True).start()
