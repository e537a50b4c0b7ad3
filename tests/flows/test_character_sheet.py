"""character_sheet: the sheet goes through the same attempt loop and render task as cuts."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from sqlalchemy import select

from db.engine import session_scope
from db.models import Job, JobKind, JobStatus, PhaseGate
from flows.character_sheet import VIEWS, character_sheet
from tasks.rendering import renderers
from tests.flows import flaky_renderer

PASSING = {"aesthetic": 1.0, "sheet_consistency": 0.85}


def _sheet_jobs() -> list[Job]:
    with session_scope() as s:
        jobs = s.scalars(select(Job).where(Job.kind == JobKind.CHARACTER_SHEET)).all()
        for job in jobs:
            job.artifacts, job.params  # noqa: B018 - loaded while the session is open
        s.expunge_all()
        return list(jobs)


async def test_a_sheet_that_cannot_be_judged_is_flagged_and_closes_its_gate(
    small_production, save_blocks
):
    thresholds, models = await save_blocks(**PASSING)  # the stand-in models have no face pack
    state = await character_sheet(
        small_production,
        "mio",
        renderer="animatic",
        attempt_budget=3,
        thresholds_block=thresholds,
        scoring_block=models,
        return_state=True,
    )
    assert state.name == "GateClosed"
    report = await state.result()
    # Could not judge for a missing face model: a new seed cannot fix that, so one attempt.
    assert (report.status, report.attempts, report.consistency) == ("needs_review", 1, None)
    assert "flagged for review after 1 attempt(s) of 3" in report.explanation
    assert "InsightFace" in report.explanation
    [job] = _sheet_jobs()
    assert (job.status, job.renderer, job.attempt) == (JobStatus.NEEDS_REVIEW, "animatic", 1)
    assert [a.uri.endswith(f"-{v}.png") for a, v in zip(job.artifacts, VIEWS, strict=True)] == [
        True
    ] * len(VIEWS)
    with session_scope() as s:
        gate = s.scalar(select(PhaseGate))
        assert gate.decision.value == "closed" and gate.character_id == job.character_id


async def test_a_new_renderer_is_one_module_and_sheets_get_task_retries(
    small_production, save_blocks, monkeypatch
):
    monkeypatch.setitem(
        renderers.RENDERERS, "flaky", ("tests.flows.flaky_renderer", "FlakyRenderer")
    )
    thresholds, models = await save_blocks(**PASSING)
    flow = character_sheet.with_options(validate_parameters=False)  # "flaky" is not built in
    state = await flow(
        small_production,
        "mio",
        renderer="flaky",
        attempt_budget=1,
        thresholds_block=thresholds,
        scoring_block=models,
        return_state=True,
    )
    [job] = _sheet_jobs()
    # The dropped connection was a Prefect task retry of the render, not a new attempt.
    assert job.id in flaky_renderer.dropped
    assert (job.renderer, job.attempt, len(job.artifacts)) == ("flaky", 1, len(VIEWS))
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
    [render] = [r for r in runs if r.name.startswith("render ")]
    assert render.run_count == 2 and render.state.is_completed()
