"""0007_reel_continuity: the reels and continuity tables come with the upgrade and go with the
downgrade, nothing else."""

from __future__ import annotations

from sqlalchemy import inspect

from db import migrate
from db.engine import get_engine


def _tables() -> set[str]:
    return set(inspect(get_engine()).get_table_names())


def test_reel_migration_up_and_down(fresh_database):
    migrate.upgrade("0007_reel_continuity")
    migrate.downgrade("-1")  # to whatever precedes it in the chain
    before = _tables()
    assert "reels" not in before
    migrate.upgrade("0007_reel_continuity")
    assert _tables() == before | {"reels", "continuity_scores"}
    columns = {c["name"] for c in inspect(get_engine()).get_columns("reels")}
    assert {"sha256", "size_bytes", "duration_seconds", "cuts", "contact_sheet_uri"} <= columns
    migrate.downgrade("-1")
    assert _tables() == before
