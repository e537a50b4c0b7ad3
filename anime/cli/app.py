"""The root Typer app and the one place that turns known errors into clear messages."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Read by Prefect once, at import: the first local command (no PREFECT_API_URL) creates
# Prefect's schema in its temporary server, about a minute on a busy CPU, far past the 20 s
# Prefect waits by default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

app = typer.Typer(
    name="anime",
    help="Tower Anime Production: productions, renders and quality gates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """An error whose message is the whole story: shown without a traceback."""


def _known_errors() -> tuple[type[BaseException], ...]:
    # Imported when a command fails, not when it is defined: `anime story ...` must not pay
    # for the production file's and the backup's imports at every start.
    from db.backup import BackupError
    from db.engine import DatabaseConfigError
    from db.production_file import ProductionFileError

    return (UserError, ProductionFileError, DatabaseConfigError, BackupError, LookupError)


def clear_errors(fn: F) -> F:
    """Known failures print one clear message on stderr and exit 1; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, _known_errors()):
                raise
            message = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
