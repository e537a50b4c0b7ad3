"""Migrations: upgrade, downgrade to base and upgrade again on a populated database."""

from __future__ import annotations

from sqlalchemy import func, inspect, select, text

from db import migrate
from db.engine import get_engine, session_scope
from db.models import Base, Character, CharacterAttribute, Project
from db.production_file import load_production
from db.production_io import import_production
from tests.conftest import EXAMPLE


def _table_names() -> set[str]:
    return set(inspect(get_engine()).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_every_model_table_and_matches_the_models(fresh_database):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    assert migrate.current_revision() is None
    migrate.upgrade()
    assert migrate.current_revision() == migrate.head_revision()
    assert {t.name for t in Base.metadata.sorted_tables} <= _table_names()
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def _row_counts() -> dict[str, int]:
    with get_engine().connect() as conn:
        return {
            name: conn.execute(text(f'select count(*) from "{name}"')).scalar_one()
            for name in _table_names()
        }


def test_round_trip_on_a_populated_database_keeps_what_the_schema_holds(fresh_database):
    migrate.upgrade()
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    populated = _row_counts()
    assert populated["cuts"] == 8

    # Step down one revision at a time: every table the remaining schema still has keeps its rows.
    while migrate.current_revision() is not None:
        migrate.downgrade("-1")
        remaining = _row_counts()
        assert remaining == {name: populated[name] for name in remaining}

    assert _table_names() == set()
    migrate.upgrade()
    assert migrate.current_revision() == migrate.head_revision()
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CharacterAttribute)) == 7
        assert {c.slug for c in s.scalars(select(Character))} == {"aki", "ren"}
        assert s.scalar(select(Project.name)) == "Moonlit Courier"


def test_downgrade_step_by_step_to_base_and_back(fresh_database):
    migrate.upgrade()
    steps = 0
    while migrate.current_revision() is not None:
        migrate.downgrade("-1")
        steps += 1
    assert steps >= 1
    with get_engine().connect() as conn:
        assert conn.execute(text("select count(*) from alembic_version")).scalar() == 0
    migrate.upgrade()
    assert migrate.current_revision() == migrate.head_revision()


def test_production_origin_migration_marks_existing_variations_as_the_files(fresh_database):
    before = "0008_production_origin-1"  # whatever precedes it in the chain
    migrate.upgrade()
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    migrate.downgrade(before)
    migrate.upgrade()
    with get_engine().connect() as conn:
        sources = conn.execute(text("select distinct source from character_variations")).all()
        roots = conn.execute(text("select root from projects")).all()
    assert sources == [("file",)] and roots == [(None,)]
    migrate.downgrade(before)
    columns = {c["name"] for c in inspect(get_engine()).get_columns("character_variations")}
    assert "source" not in columns
    assert "root" not in {c["name"] for c in inspect(get_engine()).get_columns("projects")}


def test_the_quick_schema_check_agrees_with_alembic(fresh_database):
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == migrate._alembic_head()
    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == (
        migrate.head_revision()
    )
    assert migrate.current_revision() is None
    migrate.upgrade("0003_review")
    assert migrate.current_revision() == "0003_review"
