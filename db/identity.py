"""This database's identity (db/models/jobs.py `DatabaseIdentity`): made by the migration, or
on first use where the row is gone (an emptied table), by whichever process asks first.
Read once per process (and per database, should the process move to another)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.engine import database_generation
from db.models import DatabaseIdentity

_known: tuple[int, str] | None = None  # (database generation, its id)


def database_id(session: Session) -> str:
    global _known
    generation = database_generation()
    if _known is not None and _known[0] == generation:
        return _known[1]
    found = session.scalar(select(DatabaseIdentity.id))
    if found is None:
        session.execute(
            insert(DatabaseIdentity)
            .values(singleton=True, id=uuid.uuid4())
            .on_conflict_do_nothing(index_elements=["singleton"])
        )
        found = session.scalar(select(DatabaseIdentity.id))  # ours, or a racing process's
    _known = (generation, str(found))
    return _known[1]
