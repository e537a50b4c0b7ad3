"""Story fixtures: a project row to hang stories on, and trees written the way people write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from anime.story_file import parse_markdown_story
from db.storyline.tree import StoryTree

FIRST_DRAFT = """
# The Night Delivery {#night-delivery}
> Episode 1 material.

## Dispatch {#dispatch}
Rain on the office windows. Aki takes the sealed envelope.

## Across the City {#across-the-city}
Aki sprints through wet streets.

# The Address {#the-address}

## Rooftop {#rooftop}
Ren is already waiting on the rooftop.
"""


def tree(markdown: str) -> StoryTree:
    return parse_markdown_story(markdown, "test.md").tree


@pytest.fixture
def md():
    """Markdown -> StoryTree, so tests write stories the way people do."""
    return tree


@pytest.fixture
def first_draft() -> StoryTree:
    return tree(FIRST_DRAFT)


class Clock:
    """Commit times a test controls: history order must not depend on how fast the test runs."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def project(session):
    from db.models import Project

    row = Project(slug="moonlit-courier", name="Moonlit Courier")
    session.add(row)
    session.flush()
    return row


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "moonlit-courier" / "production.yaml"


def empty_database() -> None:
    """Every row gone (as in a freshly migrated database), schema kept."""
    from sqlalchemy import text

    from db.engine import get_engine
    from db.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def example_path() -> Path:
    return EXAMPLE


@pytest.fixture
def emptied():
    """Call to empty the test database in the middle of a test (an import 'elsewhere')."""
    return empty_database


@pytest.fixture
def draft_file(tmp_path) -> Path:
    path = tmp_path / "draft.md"
    path.write_text(FIRST_DRAFT, encoding="utf-8")
    return path
