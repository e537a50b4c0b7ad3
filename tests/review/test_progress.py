"""The episode's progress bar (a Prefect progress artifact) ends at 100%, however the cuts'
last updates overlap."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from tasks.reports import Progress

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_the_bar_ends_at_100_when_the_last_cuts_finish_together() -> None:
    @flow
    async def episode() -> str | None:
        progress = Progress(40, "ep01: generation", interval=0.0)  # every cut writes
        await progress.start()
        await asyncio.gather(*(progress.advance() for _ in range(40)))
        return progress.artifact_id

    artifact_id = await episode()
    async with get_client() as client:  # the filter endpoint leaves progress artifacts out
        answer = await client._client.get(f"/artifacts/{artifact_id}")
    assert answer.json()["type"] == "progress" and answer.json()["data"] == 100.0
