"""Each database has its own identity, kept from process to process: the ComfyUI prompt ids of
its jobs are derived from it, so two databases sharing one server (staging beside production)
never give two renders the same id, nor cancel each other's prompts."""

from __future__ import annotations

from blocks.comfyui import prompt_id_for
from db import migrate
from db.engine import session_scope
from db.identity import database_id


def test_each_database_has_its_own_identity_and_keeps_it(databases, db) -> None:
    with session_scope() as s:
        first = database_id(s)
    databases.use(db)  # as another process would: read from the database, not this one's cache
    with session_scope() as s:
        assert database_id(s) == first

    other = databases.create()
    databases.use(other)
    migrate.upgrade()
    with session_scope() as s:
        second = database_id(s)
    databases.use(db)

    assert second != first
    # Job 1's first attempt in each: two prompts, not one both would re-attach to.
    assert prompt_id_for(1, 1, first) != prompt_id_for(1, 1, second)


def test_an_emptied_identity_is_made_again_once(databases, db) -> None:
    from sqlalchemy import delete, func, select

    from db.models import DatabaseIdentity

    with session_scope() as s:
        s.execute(delete(DatabaseIdentity))
    databases.use(db)  # a process that had not read it yet
    with session_scope() as s:
        made = database_id(s)
        assert s.scalar(select(func.count()).select_from(DatabaseIdentity)) == 1
    with session_scope() as s:
        assert str(s.scalar(select(DatabaseIdentity.id))) == made
