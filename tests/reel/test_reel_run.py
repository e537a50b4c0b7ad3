"""Every render-episode run ends with the reel, whatever gate closed, linked in its artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter
from sqlalchemy import select

from db.engine import session_scope
from db.models import Reel
from flows.episode import render_episode


async def test_a_run_stopped_by_its_gate_still_ends_with_the_reel(small_production, save_blocks):
    thresholds, models = await save_blocks(aesthetic=10.5)  # every keyframe fails
    state = await render_episode(
        small_production, 1, renderer="animatic", attempt_budget=1,
        thresholds_block=thresholds, scoring_block=models, return_state=True,
    )  # fmt: skip
    assert state.name == "GateClosed"
    report = await state.result()
    reel = report.reel
    assert reel is not None and reel.sources == {"attempt": 3}  # flagged, shown as not approved
    assert reel.frames == 24 and reel.fps == 8  # three cuts of 8 frames at 8 fps
    assert f"reel: {reel.path}" in report.summary() and Path(reel.path).is_file()
    with session_scope() as s:
        stored = s.scalar(select(Reel))
        assert stored.prefect_flow_run_id == str(state.state_details.flow_run_id)
        assert [c["job_id"] for c in stored.cuts] == [o.job_id for o in report.phases[0].cuts]

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(),
            # No task-run filter: task runs reach the server as events, maybe not yet.
            flow_run_filter=FlowRunFilter(id={"any_": [state.state_details.flow_run_id]}),
        )
    by_key = {a.key: a for a in artifacts if a.key}
    link = by_key["pocket-short-episode-1-reel"]
    # Prefect keeps a link artifact as markdown: [text](url); no ANIME_API_URL: the file.
    assert link.data.endswith(f"](file://{reel.path})") and "reel (3.0 s)" in link.data
    sheet = by_key["pocket-short-episode-1-reel-sheet"]
    assert "![contact sheet](data:image/jpeg;base64," in sheet.data and "E01S01C03" in sheet.data
