"""Heartbeats of the processes that take jobs up: how a job run of another machine is told
crashed (its process stopped beating) from a live one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import ProcessHeartbeat


def beat(session: Session, host: str, pid: int, started: str | None) -> None:
    """This process lives (now, by the database's clock)."""
    row = {"host": host, "pid": pid, "process_started": started or ""}
    session.execute(
        insert(ProcessHeartbeat)
        .values(**row, beat_at=func.now())
        .on_conflict_do_update(
            index_elements=["host", "pid", "process_started"], set_={"beat_at": func.now()}
        )
    )


def silent_for(session: Session, host: str, pid: int, started: str | None) -> float | None:
    """Seconds since the process last beat (or since the database started, if later), or None
    when it never did (a process of a version without heartbeats: nothing can be told of it)."""
    last: datetime | None = session.scalar(
        select(ProcessHeartbeat.beat_at).where(
            ProcessHeartbeat.host == host,
            ProcessHeartbeat.pid == pid,
            ProcessHeartbeat.process_started == (started or ""),
        )
    )
    if last is None:
        return None
    now, up_since = session.execute(select(func.now(), func.pg_postmaster_start_time())).one()
    # A database that was down took no beats: silence counts from when it came back at the
    # latest, so a live process of another machine is not called dead in the seconds before
    # its next beat lands.
    return (now - max(last, up_since)).total_seconds()
