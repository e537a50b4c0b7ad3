"""What `anime` loads to run one command: the module of that command only (anime/cli/app.py:
COMMANDS), and for commands that only read or write the database, no Prefect, FastAPI, torch
or Alembic. Start-up time itself is measured in bench/cli_startup.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Loaded by commands that render, serve or score; never by a command that only uses the database.
HEAVY = (
    "prefect",
    "fastapi",
    "starlette",
    "uvicorn",
    "torch",
    "alembic",
    "httpx",
    "anime.api",
    "anime.cli.ops",
    "anime.cli.comfyui",
    "anime.cli.render",
    "flows",
    "tasks",
    "blocks",
    "deployments",
)

# Runs `anime ARGS...` once per argument list, in one process as the console script would, and
# writes each command's exit code, output and the modules loaded so far to OUT.
PROBE = """
import contextlib, io, json, sys
from anime.cli import app
runs = []
for args in json.loads(sys.argv[2]):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            app(args, prog_name="anime")
        except SystemExit as exc:
            code = exc.code
    runs.append({"code": code, "output": output.getvalue(), "modules": sorted(sys.modules)})
open(sys.argv[1], "w").write(json.dumps(runs))
"""

# For each module named in COMMANDS: the commands that importing it alone registers (a fork of
# a process that has imported only the root app, so each module starts from the same state).
REGISTRY = """
import json, os, sys
from anime.cli.app import COMMANDS, app
found = {}
for module in dict.fromkeys(COMMANDS.values()):
    read, write = os.pipe()
    if os.fork() == 0:
        __import__(module)
        names = [c.name or c.callback.__name__ for c in app.registered_commands]
        names += [g.name for g in app.registered_groups]
        os.write(write, json.dumps(names).encode())
        os._exit(0)
    os.close(write)
    found[module] = json.loads(os.read(read, 65536))
    os.wait()
print(json.dumps({"commands": list(COMMANDS), "registered": found}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "ANIME_AUTHOR": "mina"}


def test_each_command_is_registered_by_the_module_the_cli_imports_for_it():
    done = subprocess.run(
        [sys.executable, "-c", REGISTRY], env=_env(), capture_output=True, text=True, check=True
    )
    table = json.loads(done.stdout)
    from anime.cli.app import COMMANDS

    for name, module in COMMANDS.items():
        assert name in table["registered"][module], f"{module} does not register `{name}`"
    every = {name for names in table["registered"].values() for name in names}
    assert every == set(COMMANDS), "a command is missing from anime/cli/app.py: COMMANDS"
    # `render` is listed with ops.py's --deployment, and `anime --help` lists everything.
    help_text = subprocess.run(
        [sys.executable, "-m", "anime", "render", "--help"], env=_env(), capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert "--deployment" in help_text
    listed = subprocess.run(
        [sys.executable, "-m", "anime", "--help"], env=_env(), capture_output=True, text=True
    ).stdout
    assert all(f" {name} " in listed for name in COMMANDS)


def _run(tmp_path: Path, *commands: list[str]) -> list[tuple[str, set[str]]]:
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), json.dumps(commands)],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(out.read_text())
    for args, run in zip(commands, runs, strict=True):
        assert run["code"] == 0, (args, run["output"], done.stderr)
    return [(run["output"], set(run["modules"])) for run in runs]


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_database_commands_load_no_prefect_api_or_scoring_code(production, tmp_path):
    from typer.testing import CliRunner

    from anime.cli import app

    story, work = "moonlit-courier", tmp_path / "work.md"
    assert CliRunner().invoke(app, ["story", "checkout", story, "-o", str(work)]).exit_code == 0
    work.write_text(work.read_text().replace("then takes it.", "then takes it slowly."))
    # One process, the commands in turn: the modules each needs add up, and none is heavy.
    log, status, diff, _, after = _run(
        tmp_path,
        ["story", "log", story, "-n", "1"],
        ["status"],
        ["story", "diff", story, str(work)],
        ["story", "commit", story, str(work), "-m", "Slowly"],
        ["story", "log", story, "-n", "1"],
    )
    assert log[0].startswith("e93b0367a9 (main)  2026-11-04 09:15  mina  Dispatch:")
    assert _heavy(log[1]) == []
    # The story commands' module only: not the one of `anime status`, nor any other.
    assert {m for m in log[1] if m.startswith("anime.cli.")} == {
        "anime.cli.app",
        "anime.cli.db",
        "anime.cli.story",
    }
    assert "Moonlit Courier [moonlit-courier]" in status[0]
    assert "+It is still warm. Aki hesitates, then takes it slowly." in diff[0]
    assert after[0].rstrip().endswith("mina  Slowly")
    assert _heavy(after[1]) == []
