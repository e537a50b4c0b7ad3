"""One import of a project at a time: two concurrent imports of one new production would both
insert it, and the second would die on the unique slug with a raw IntegrityError.

A transaction-scoped advisory lock on the project's slug makes the second import wait for the
first to commit, then update what the first created (imports are idempotent). It waits at most
ANIME_IMPORT_WAIT_S seconds (default 60), then says another import is running.
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

DEFAULT_WAIT_S = 60.0


class ImportRunning(RuntimeError):
    """Another import of the same project holds the lock past the wait."""


def lock_project_import(session: Session, slug: str) -> None:
    wait_s = float(os.environ.get("ANIME_IMPORT_WAIT_S") or DEFAULT_WAIT_S)
    timeout = text("SELECT set_config('lock_timeout', :value, true)")  # this transaction only
    session.execute(timeout, {"value": f"{int(wait_s * 1000)}ms"})
    try:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('anime-import'), hashtext(:slug))"),
            {"slug": slug},
        )
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        raise ImportRunning(
            f"another import of project {slug!r} is running (waited {wait_s:g} s): "
            "try again when it has finished"
        ) from None
    session.execute(timeout, {"value": "0"})


__all__ = ["ImportRunning", "lock_project_import"]
