"""Schema migrations (Alembic), driven from code so no alembic.ini has to be found.

Every command that reads production data checks the schema first, so that check reads the
migration files and the ``alembic_version`` row directly: loading Alembic and every migration
module would cost most of a short command's start-up.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from db.engine import get_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision(?:\s*:\s*[^=]+)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:\s*[^=]+)?\s*=\s*(.+)$", re.M)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class MigrationError(RuntimeError):
    """A migration asked for that cannot be: an unknown revision, or below base."""


def _migrate(direction: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        getattr(command, direction)(alembic_config(), revision)
    except CommandError as exc:
        known = ", ".join(known_revisions())
        raise MigrationError(
            f"cannot {direction} to {revision!r}: {exc} (revisions: base, {known}, head; "
            "-N / +N for steps)"
        ) from None


def upgrade(revision: str = "head") -> None:
    _migrate("upgrade", revision)


def downgrade(revision: str = "-1") -> None:
    _migrate("downgrade", revision)


def known_revisions() -> list[str]:
    """Every revision the code knows, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def stored_rows() -> dict[str, int]:
    """Rows per non-empty table of the database in use (Alembic's own table left out)."""
    from sqlalchemy import inspect

    engine = get_engine()
    names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
    with engine.connect() as conn:
        counts = {n: conn.scalar(text(f'SELECT count(*) FROM "{n}"')) or 0 for n in sorted(names)}
    return {name: count for name, count in counts.items() if count}


def current_revision() -> str | None:
    with get_engine().connect() as conn:
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except ProgrammingError:  # no alembic_version table: nothing migrated yet
            return None
    if len(rows) > 1:  # several heads: let Alembic say what it makes of them
        from alembic.runtime.migration import MigrationContext

        with get_engine().connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return rows[0][0] if rows else None


@cache
def head_revision() -> str | None:
    """The newest revision, read from the migration files' ``revision``/``down_revision``."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        down = _DOWN.search(source)
        if found is None or down is None:
            return _alembic_head()  # a file this reader does not understand
        revisions.add(found.group(1))
        parents.update(_QUOTED.findall(down.group(1)))
    heads = revisions - parents
    if len(heads) != 1:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(message: str, autogenerate: bool = True) -> None:
    """For developers: write a new migration from the models' difference to the database."""
    from alembic import command

    command.revision(alembic_config(), message=message, autogenerate=autogenerate)
