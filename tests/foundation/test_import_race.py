"""Two imports of one new production at once (issue 18): the second waits for the first and
then changes nothing, or, past its wait, says another import is running; never IntegrityError."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from db.engine import session_scope
from db.import_lock import ImportRunning
from db.models import Cut, Project
from db.production_file import load_production
from db.production_io import import_production
from tests.conftest import EXAMPLE


def _import_in_thread(outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            with session_scope() as s:
                outcome["report"] = import_production(s, load_production(EXAMPLE))
        except Exception as exc:  # noqa: BLE001 - the test asserts on what it was
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_second_import_waits_for_the_first_and_changes_nothing(db):
    outcome: dict = {}
    with session_scope() as first:
        import_production(first, load_production(EXAMPLE))
        first.flush()  # the project row is written, not committed: the second must not insert
        thread = _import_in_thread(outcome)
        time.sleep(1.0)  # let the second reach the lock while the first holds it
        assert thread.is_alive() and not outcome
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert not outcome["report"].changed, outcome["report"].summary()
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 1
        assert s.scalar(select(func.count()).select_from(Cut)) == 8


def test_past_its_wait_the_second_import_says_another_is_running(db, monkeypatch):
    monkeypatch.setenv("ANIME_IMPORT_WAIT_S", "0.3")
    outcome: dict = {}
    with session_scope() as first:
        import_production(first, load_production(EXAMPLE))
        thread = _import_in_thread(outcome)
        thread.join(60)
    assert isinstance(outcome.get("error"), ImportRunning)
    assert "another import of project 'moonlit-courier' is running" in str(outcome["error"])
    with pytest.raises(KeyError):
        outcome["report"]
