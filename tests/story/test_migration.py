"""Migration 0002_storyline on a database that already holds a production, both ways."""

from __future__ import annotations

from sqlalchemy import inspect, text

from anime import story_edit
from db import migrate
from db import story as vc
from db.engine import get_engine, session_scope
from db.models import Episode

STORY_TABLES = {
    "stories",
    "story_snapshots",
    "story_commits",
    "story_commit_parents",
    "story_branches",
    "story_branch_moves",
    "story_adaptations",
}


def tables() -> set[str]:
    return set(inspect(get_engine()).get_table_names())


def episode_columns() -> set[str]:
    return {c["name"] for c in inspect(get_engine()).get_columns("episodes")}


def scalar(sql: str):
    with get_engine().connect() as conn:
        return conn.execute(text(sql)).scalar()


def populate_production() -> None:
    """Rows written the way 0001's schema wants them (the models already know 0002's column)."""
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (slug, name, description, settings) "
                "VALUES ('moonlit-courier', 'Moonlit Courier', '', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO episodes (project_id, number, title, synopsis) "
                "SELECT id, 1, 'The Night Delivery', '' FROM projects"
            )
        )


def populate_story(first_draft) -> str:
    with session_scope() as session:
        story = vc.create_story(
            session, "moonlit-courier", "moonlit", "Moonlit", author="mina", tree=first_draft
        )
        head = vc.resolve(session, story, "main")
        vc.create_branch(session, story, "alt", author="ren")
        vc.commit(
            session,
            story,
            story_edit.remove(first_draft, "rooftop"),
            parent=head.sha,
            author="mina",
            message="cut",
        )
        episode = session.query(Episode).filter_by(number=1).one()
        vc.adapt_episode(session, episode, f"moonlit@{head.sha}", ["dispatch"])
        return head.sha


def test_upgrade_downgrade_upgrade_keeps_the_production(fresh_database, first_draft):
    migrate.upgrade("0001_production_schema")
    populate_production()

    migrate.upgrade("0002_storyline")
    assert tables() >= STORY_TABLES
    assert "story_commit_id" in episode_columns()
    assert scalar("SELECT count(*) FROM episodes WHERE story_commit_id IS NULL") == 1

    migrate.upgrade()  # whatever comes after: the story API runs on the newest schema
    populate_story(first_draft)
    assert scalar("SELECT count(*) FROM story_commits") == 2
    assert scalar("SELECT count(*) FROM episodes WHERE story_commit_id IS NOT NULL") == 1

    migrate.downgrade("0001_production_schema")
    assert migrate.current_revision() == "0001_production_schema"
    assert not STORY_TABLES & tables()
    assert "story_commit_id" not in episode_columns()
    assert scalar("SELECT title FROM episodes") == "The Night Delivery"

    migrate.upgrade()
    assert tables() >= STORY_TABLES
    assert scalar("SELECT count(*) FROM stories") == 0
    assert scalar("SELECT count(*) FROM episodes WHERE story_commit_id IS NULL") == 1
    populate_story(first_draft)  # the story tables work again after the round trip
    assert scalar("SELECT count(*) FROM story_commits") == 2
    assert scalar("SELECT count(*) FROM story_branch_moves") == 3


def test_the_models_match_the_migrated_schema(db):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from db.models import Base

    with get_engine().connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def mine(diff) -> bool:
        text_form = repr(diff)
        return any(name in text_form for name in (*STORY_TABLES, "story_commit_id"))

    assert [d for d in differences if mine(d)] == []
