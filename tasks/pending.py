"""What the nightly run picks up: episodes with cuts pending, across projects."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from db.queries import PendingEpisode, pending_episodes
from tasks.production import in_session


@task(name="find-pending-episodes", cache_policy=NO_CACHE)
async def find_pending() -> list[PendingEpisode]:
    return await in_session(pending_episodes)
