"""render_episode end to end on the animatic renderer, under a real Prefect API."""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import select

from db.engine import session_scope
from db.models import (
    Artifact,
    GateDecision,
    GenerationParams,
    Job,
    JobKind,
    JobStatus,
    Phase,
    PhaseGate,
    QualityScore,
)
from flows.episode import render_episode
from flows.reproduce import reproduce_job
from tests.flows.conftest import count_jobs

PASSING = {"aesthetic": 1.0, "motion_smoothness": 0.5, "temporal_lpips": (5.0, "<=")}


async def test_episode_passes_every_phase_and_stores_everything(production, save_blocks):
    thresholds, models = await save_blocks(**PASSING)
    state = await render_episode(
        production,
        1,
        renderer="animatic",
        thresholds_block=thresholds,
        scoring_block=models,
        return_state=True,
    )
    assert state.is_completed() and state.name == "Completed", state.message
    report = await state.result()
    assert [p.decision for p in report.phases] == ["open", "open", "open"]
    assert report.renderer == "animatic"

    with session_scope() as s:
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
        assert len(jobs) == 16  # 8 keyframes + 8 animations, nothing twice
        assert {j.status for j in jobs} == {JobStatus.PASSED}
        assert {j.renderer for j in jobs} == {"animatic"}
        run_ids = {j.prefect_flow_run_id for j in jobs}
        assert None not in run_ids  # every job names the cut flow run that made it
        for job in jobs:
            params = s.get(GenerationParams, job.id)
            assert params.workflow["renderer"] == "animatic"
            assert params.workflow_sha256 and params.seed is not None
            assert params.environment["renderer"] == "animatic"
            assert params.positive_prompt  # the prompt we built is stored too
            (artifact,) = s.scalars(select(Artifact).where(Artifact.job_id == job.id))
            data = Path(artifact.uri).read_bytes()
            assert hashlib.sha256(data).hexdigest() == artifact.sha256
            expected = 1 if job.kind is JobKind.KEYFRAME else 16
            assert artifact.frames in (expected, 24)  # the running cut is 24 frames
        scores = s.scalars(select(QualityScore)).all()
        assert {q.metric for q in scores} >= {"aesthetic", "motion_smoothness", "temporal_lpips"}
        gates = s.scalars(select(PhaseGate).order_by(PhaseGate.id)).all()
        assert [(g.phase, g.decision) for g in gates] == [
            (Phase.GENERATION, GateDecision.OPEN),
            (Phase.ANIMATION, GateDecision.OPEN),
            (Phase.QUALITY, GateDecision.OPEN),
        ]

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            # No task-run filter: task runs reach the server as events, maybe not yet.
            artifact_filter=ArtifactFilter(),
            sort=ArtifactSort.CREATED_DESC,
            limit=200,
        )
    keys = {a.key for a in artifacts if a.key}
    assert any(k.endswith("generation-cuts") for k in keys)
    assert any(k.endswith("generation-report") for k in keys)
    report_md = next(a for a in artifacts if a.key and a.key.endswith("generation-report"))
    assert "data:image/jpeg;base64," in report_md.data  # real thumbnails in the report
    async with get_client() as client:  # the filter endpoint leaves progress artifacts out
        response = await client._client.get(f"/artifacts/{report.phases[0].progress_artifact_id}")
    assert response.json()["type"] == "progress" and response.json()["data"] == 100.0


async def test_closed_gate_stops_the_next_phase_and_flags_cuts(small_production, save_blocks):
    thresholds, models = await save_blocks(aesthetic=10.5)  # above the 1-10 scale: all fail
    state = await render_episode(
        small_production,
        1,
        renderer="animatic",
        attempt_budget=2,
        thresholds_block=thresholds,
        scoring_block=models,
        return_state=True,
    )
    assert state.is_completed() and state.name == "GateClosed"
    assert "generation gate closed" in state.message
    report = await state.result()
    assert report.stopped_at == Phase.GENERATION
    assert len(report.phases) == 1

    assert count_jobs(phase=Phase.ANIMATION) == 0, "a closed gate must stop the next phase"
    assert count_jobs(kind=JobKind.KEYFRAME) == 6  # two attempts per cut, the budget
    assert count_jobs(status=JobStatus.NEEDS_REVIEW) == 3  # one flagged attempt per cut
    with session_scope() as s:
        seeds = s.execute(select(Job.cut_id, GenerationParams.seed).join(GenerationParams)).all()
        per_cut: dict[int, set[int]] = {}
        for cut_id, seed in seeds:
            per_cut.setdefault(cut_id, set()).add(seed)
        assert all(len(v) == 2 for v in per_cut.values()), "each regeneration uses a new seed"
        gate = s.scalar(select(PhaseGate))
        assert gate.decision is GateDecision.CLOSED
        assert "E01S01C03" in gate.explanation and "80%" in gate.explanation
        flagged = s.scalar(select(Job).where(Job.status == JobStatus.NEEDS_REVIEW))
        assert flagged.explanation.startswith("flagged for review after 2 attempt(s)")
        assert "aesthetic" in flagged.explanation


async def test_rerun_skips_approved_cuts_and_renders_nothing_twice(small_production, save_blocks):
    thresholds, models = await save_blocks(**PASSING)
    kwargs = dict(
        renderer="animatic",
        until=Phase.GENERATION,
        thresholds_block=thresholds,
        scoring_block=models,
    )
    await render_episode(small_production, 1, **kwargs)
    with session_scope() as s:
        before = {(j.id, j.status, j.finished_at) for j in s.scalars(select(Job))}
    report = await render_episode(small_production, 1, **kwargs)
    assert len(report.phases[0].cuts) == 3
    assert all(o.skipped for o in report.phases[0].cuts)
    with session_scope() as s:
        after = {(j.id, j.status, j.finished_at) for j in s.scalars(select(Job))}
    assert after == before


async def test_same_seed_sequence_on_a_rerun_after_failures(small_production, save_blocks):
    """Failed attempts are not rendered again; a bigger budget continues the sequence."""
    thresholds, models = await save_blocks(aesthetic=10.5)
    await render_episode(
        small_production,
        1,
        renderer="animatic",
        attempt_budget=1,
        until=Phase.GENERATION,
        thresholds_block=thresholds,
        scoring_block=models,
    )
    assert count_jobs(kind=JobKind.KEYFRAME) == 3
    await render_episode(
        small_production,
        1,
        renderer="animatic",
        attempt_budget=2,
        until=Phase.GENERATION,
        thresholds_block=thresholds,
        scoring_block=models,
    )
    assert count_jobs(kind=JobKind.KEYFRAME) == 6
    assert count_jobs(status=JobStatus.NEEDS_REVIEW) == 3


async def test_reproduction_reports_identical_output(small_production, save_blocks):
    thresholds, models = await save_blocks(**PASSING)
    await render_episode(
        small_production,
        1,
        renderer="animatic",
        until=Phase.GENERATION,
        thresholds_block=thresholds,
        scoring_block=models,
    )
    with session_scope() as s:
        original = s.scalar(select(Job).order_by(Job.id).limit(1))
    report = await reproduce_job(original.id)
    assert report.identical
    assert report.environment_differences == {}
    with session_scope() as s:
        copy = s.get(Job, report.reproduction_job_id)
        assert copy.kind is JobKind.REPRODUCTION and copy.parent_job_id == original.id
        assert copy.status is JobStatus.PASSED
        assert "identical output" in copy.explanation
    again = await reproduce_job(original.id)
    assert again.reproduction_job_id != report.reproduction_job_id


async def test_a_run_of_an_unknown_project_fails_with_one_line_and_no_traceback(
    production, prefect_harness
):
    """A served run started with a typo: Failed naming what is missing, and nothing in the
    worker's log that reads like a crash (no traceback from the task or the flow)."""
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.ERROR)
    logging.getLogger("prefect").addHandler(keep)
    try:
        state = await render_episode("moonlit-couriers", 1, renderer="animatic", return_state=True)
    finally:
        logging.getLogger("prefect").removeHandler(keep)
    assert state.is_failed()
    assert state.message == "no project 'moonlit-couriers' (projects: moonlit-courier)"
    assert records, "the refusal is logged"
    assert not [r for r in records if r.exc_info and r.exc_info[0] is not None]
    assert not [r for r in records if "Traceback" in r.getMessage()]
