"""The Prefect API calls behind the review pause (flows/review.py composes them)."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Running


async def resume_running() -> None:
    """After a timed-out pause the run is still PAUSED in the API: carry on as RUNNING."""
    run_id = flow_run.get_id()
    if run_id:
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Running(), force=True)
