"""The root Typer app and the one place that turns known errors into clear messages."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import typer.main
from typer.core import TyperGroup

if TYPE_CHECKING:
    # typer's own click (vendored since 0.2x); only annotations name it.
    from typer import _click


def set_prefect_defaults() -> None:
    """Prefect settings the studio's commands need unless the user set them (again in each
    child of the resident process, which starts from the caller's environment)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Read by Prefect once, at import: the first local command (no PREFECT_API_URL) creates
    # Prefect's schema in its temporary server, about a minute on a busy CPU, far past the 20 s
    # Prefect waits by default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


set_prefect_defaults()

# Which module registers each command, in the order `anime --help` lists them. A command's
# module is imported when the command is run (or listed): `anime story log` must not pay for
# the imports of `anime server` or `anime comfyui` at every start.
COMMANDS: dict[str, str] = {
    # anime/cli/ops.py gives render.py's `render` its --deployment path.
    "render": "anime.cli.ops",
    "sheet": "anime.cli.render",
    "calibrate": "anime.cli.identity",
    **dict.fromkeys(
        ("serve", "server", "api", "deploy", "worker", "reproduce", "doctor", "cancel"),
        "anime.cli.ops",
    ),
    **dict.fromkeys(("import", "export", "status", "demo"), "anime.cli.production"),
    "db": "anime.cli.db",
    "comfyui": "anime.cli.comfyui",
    "episode": "anime.cli.episode",
    "models": "anime.cli.models",
    "review": "anime.cli.review",
    "story": "anime.cli.story",
    "workflow": "anime.cli.workflow",
    "resident": "anime.cli.resident",
}


class CommandsOnDemand(TyperGroup):
    """The root group: a command's module is imported when the command is asked for."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        self._load_all()
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in COMMANDS:
            # A typo: load everything, so the suggestions ("did you mean") know every command.
            self._load_all()
        self._refresh(cmd_name)
        return self.commands.get(cmd_name)

    def _load_all(self) -> None:
        load_all_commands()
        everything = _registered_commands()
        for name in COMMANDS:
            if name in everything:
                self.add_command(everything[name], name)

    def _refresh(self, name: str) -> None:
        """Build the click command from what the module registered, once it is imported (a
        group built earlier may hold `render` as it was before ops.py extended it)."""
        module = COMMANDS.get(name)
        if module is None or (name in self.commands and module in sys.modules):
            return
        importlib.import_module(module)
        command = _registered_commands().get(name)
        if command is not None:
            self.add_command(command, name)


def load_all_commands() -> None:
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module)


def _registered_commands() -> dict[str, _click.Command]:
    """The click commands typer builds from what the imported modules registered on `app`."""
    return dict(typer.main.get_group(app).commands)


app = typer.Typer(
    name="anime",
    cls=CommandsOnDemand,
    help="Tower Anime Production: productions, renders and quality gates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """An error whose message is the whole story: shown without a traceback."""


@app.callback()
def main(
    debug: bool = typer.Option(
        False, "--debug", help="show the traceback behind an error message", envvar="ANIME_DEBUG"
    ),
) -> None:
    """Tower Anime Production: productions, renders and quality gates."""
    # An environment variable, so subprocesses and every command's wrapper see the same choice.
    if debug:
        os.environ["ANIME_DEBUG"] = "1"


def _debugging() -> bool:
    return os.environ.get("ANIME_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _connection_message(exc: BaseException) -> str | None:
    """One line for a database that refuses us (wrong password, server down), else None."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    from db.engine import describe_database

    reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else ""
    # psycopg prefixes the server's words with where it tried; the server's FATAL is the news.
    reason = reason.rsplit("FATAL:", 1)[-1].strip() if "FATAL:" in reason else reason
    return f"cannot use the database {describe_database()}: {reason}"


def _known_errors() -> tuple[type[BaseException], ...]:
    # Imported when a command fails, not when it is defined: `anime story ...` must not pay
    # for the production file's and the backup's imports at every start.
    from db.backup import BackupError
    from db.engine import DatabaseConfigError
    from db.import_lock import ImportRunning
    from db.migrate import MigrationError
    from db.production_file import ProductionFileError

    return (
        UserError,
        ProductionFileError,
        DatabaseConfigError,
        BackupError,
        ImportRunning,
        MigrationError,
        LookupError,
    )


def clear_errors(fn: F) -> F:
    """Known failures print one clear message on stderr and exit 1 (``--debug``: with the
    traceback); bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            connection = _connection_message(exc)
            if _debugging() or (connection is None and not isinstance(exc, _known_errors())):
                raise
            message = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
            message = connection or message
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
