"""`anime resident ...`: the resident process that runs database commands without paying their
imports (anime/resident). It starts by itself at the first `anime story` or `anime status` and
exits after ANIME_RESIDENT_IDLE_S (15 minutes) without a command, or when the code changes."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.resident import protocol

resident_app = typer.Typer(
    help="The resident process that runs `anime story` and `anime status` fast.",
    no_args_is_help=True,
)
app.add_typer(resident_app, name="resident")


def _residents() -> list[tuple[Path, int, int, float]]:
    """(socket, pid, commands served, start) of each of this user's resident processes; the
    files of one that was killed (kill -9 leaves them) are removed on the way."""
    folder = protocol.socket_dir()
    if folder is None:
        raise UserError("no private folder for resident processes (XDG_RUNTIME_DIR or /tmp)")
    found = []
    for pid_file in sorted(folder.glob("*.sock.pid")):
        try:
            pid, served, started = (int(word) for word in pid_file.read_text().split())
            os.kill(pid, 0)
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        found.append((pid_file.with_suffix(""), pid, served, started))
    return found


@resident_app.command("status")
@clear_errors
def status() -> None:
    """List the resident processes, and say which one this `anime` uses."""
    mine = protocol.socket_path(protocol.socket_dir() or Path("."))
    residents = _residents()
    if not protocol.enabled():
        switch = f"{protocol.SWITCH}={os.environ[protocol.SWITCH]}"
        typer.echo(f"{switch}: every command runs in a process of its own")
    if not residents:
        typer.echo("no resident process: the next `anime story` or `anime status` starts one")
    for sock, pid, served, started in residents:
        since = datetime.fromtimestamp(started)
        state = f"pid {pid}, up since {since:%Y-%m-%d %H:%M:%S}, {served} commands served"
        used = "  (this anime)" if sock == mine else ""
        typer.echo(f"{sock}: {state}{used}")


@resident_app.command("stop")
@clear_errors
def stop() -> None:
    """Stop every resident process of this user; the next command starts a new one."""
    stopped = 0
    for _sock, pid, _served, _started in _residents():
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)
        stopped += 1
    typer.echo(f"stopped {stopped} resident process{'es' if stopped != 1 else ''}")
