"""The resident `anime` (anime/resident): `anime story …` and `anime status` run by the console
script as a user runs them, once in their own process and then forked by the resident process
that the first one started. What must hold is that a user cannot tell the two apart, except by
the time: same output, exit status, environment, folder and files; and code changed on disk is
never run from a process that imported it before. Times are in bench/cli_startup.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

ANIME = Path(sys.executable).with_name("anime")
STORY = "moonlit-courier"


@pytest.fixture
def resident_env(tmp_path: Path):
    """The caller's environment with the resident process on, in a folder of this test's own;
    every resident process started there is stopped afterwards."""
    if not ANIME.exists():
        pytest.fail(f"no console script at {ANIME}: install the project (make install)")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ANIME_AUTHOR": "mina",
        "ANIME_RESIDENT": "1",
        "ANIME_RESIDENT_IDLE_S": "120",
        "XDG_RUNTIME_DIR": str(runtime),
    }
    yield env
    subprocess.run([ANIME, "resident", "stop"], env=env, capture_output=True, timeout=60)


def anime(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANIME, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def residents(env: dict[str, str]) -> dict[int, int]:
    """pid -> commands served, of the resident processes `anime resident status` lists."""
    done = anime(env, "resident", "status")
    assert done.returncode == 0, done.stderr
    found = {}
    for line in done.stdout.splitlines():
        if ": pid " in line:
            words = line.split(": pid ", 1)[1].replace(",", "").split()
            found[int(words[0])] = int(words[words.index("commands") - 1])
    return found


def wait_for_resident(env: dict[str, str], not_pid: int | None = None) -> int:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [pid for pid in residents(env) if pid != not_pid]
        if found:
            return found[0]
        time.sleep(0.2)
    pytest.fail("the first command did not start a resident process")


def test_the_resident_process_runs_a_command_as_its_own_process_would(
    production, resident_env, databases, tmp_path
):
    first = anime(resident_env, "story", "log", STORY, "-n", "1")
    assert first.returncode == 0, first.stderr
    pid = wait_for_resident(resident_env)
    assert residents(resident_env) == {pid: 0}

    again = anime(resident_env, "story", "log", STORY, "-n", "1")
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")
    assert residents(resident_env) == {pid: 1}, "the second `story log` was not forked there"

    # The caller's folder: a relative path is the caller's, for writing and for reading.
    work = tmp_path / "writer"
    work.mkdir()
    checkout = anime(resident_env, "story", "checkout", STORY, "-o", "work.md", cwd=work)
    assert checkout.returncode == 0, checkout.stderr
    text = (work / "work.md").read_text()
    (work / "work.md").write_text(text.replace("then takes it.", "then takes it slowly."))
    diff = anime(resident_env, "story", "diff", STORY, "work.md", cwd=work)
    assert diff.returncode == 0, diff.stderr
    assert "+It is still warm. Aki hesitates, then takes it slowly." in diff.stdout
    commit = anime(resident_env, "story", "commit", STORY, "work.md", "-m", "Slowly", cwd=work)
    assert commit.returncode == 0, commit.stderr
    # The caller's environment (ANIME_AUTHOR) wrote the commit.
    assert anime(resident_env, "story", "log", STORY, "-n", "1").stdout.rstrip().endswith(
        "mina  Slowly"
    )

    # The caller's database: the same resident process serves another DATABASE_URL, whose
    # empty schema is a user's mistake: one line, exit status 1, no traceback.
    empty = {**resident_env, "DATABASE_URL": databases.create()}
    refused = anime(empty, "status")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the database schema is at base (empty)")
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1
    unknown = anime(resident_env, "story", "log", "no-such-story")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error:"), unknown.stderr
    assert residents(resident_env) == {pid: 7}


def test_code_changed_on_disk_is_not_run_by_the_process_that_imported_it(
    production, resident_env
):
    assert anime(resident_env, "status").returncode == 0
    old = wait_for_resident(resident_env)
    # An upgrade or an edit of the studio's code (a module the resident process imported).
    module = REPO / "anime" / "cli" / "story.py"
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        done = anime(resident_env, "story", "log", STORY, "-n", "1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("e93b0367a9 (main)  2026-11-04 09:15  mina  Dispatch:")
        # It ran in a process of its own; the old resident process left, and a new one came.
        new = wait_for_resident(resident_env, not_pid=old)
        assert old not in residents(resident_env)
    finally:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert new != old


def test_other_commands_and_a_switched_off_resident_run_in_their_own_process(
    production, resident_env
):
    off = {**resident_env, "ANIME_RESIDENT": "0"}
    assert anime(off, "status").returncode == 0
    assert anime(resident_env, "db", "current").returncode == 0  # not a resident command
    time.sleep(1.0)  # long enough for a resident process to have been started, were one
    assert residents(resident_env) == {}
    listed = anime(off, "resident", "status").stdout
    assert "ANIME_RESIDENT=0: every command runs in a process of its own" in listed


# Reads every environment variable that importing the resident process's modules reads.
SPY = """
import json, os
seen = set()
class Spy(type(os.environ)):
    def __getitem__(self, key):
        seen.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        seen.add(key)
        return super().__contains__(key)
os.environ.__class__ = Spy
from anime.resident.server import _preload
_preload()
print(json.dumps(sorted(seen)))
"""


def test_what_its_imports_read_from_the_environment_keys_the_resident_process():
    """A variable read once at import (psycopg's implementation, pgserver's lock folder) would
    otherwise keep the value of the caller that started the resident process."""
    from anime.resident.protocol import IMPORT_TIME_ENV

    done = subprocess.run(
        [sys.executable, "-c", SPY],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    read = set(json.loads(done.stdout.splitlines()[-1]))
    assert "PSYCOPG_IMPL" in read  # the spy sees what it must
    # Android's marker is a platform test; the Prefect defaults are set again in each child.
    exempt = {"ANDROID_DATA", *(name for name in read if name.startswith("PREFECT_"))}
    assert sorted(n for n in read - exempt if not n.startswith(IMPORT_TIME_ENV)) == []


def test_a_caller_whose_import_time_settings_differ_gets_another_resident_process():
    from anime.resident.protocol import socket_path

    base = {"HOME": "/home/mina", "DATABASE_URL": "postgresql://a", "ANIME_AUTHOR": "mina"}
    same = socket_path(Path("/run"), base)
    assert socket_path(Path("/run"), {**base, "DATABASE_URL": "postgresql://b"}) == same
    assert socket_path(Path("/run"), {**base, "PSYCOPG_IMPL": "python"}) != same
    assert socket_path(Path("/run"), {**base, "TZ": "Asia/Tokyo"}) != same
