"""People's decisions in the runs: through the API and the CLI between runs, and through the
Prefect UI's form while a run waits."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    TaskRunFilter,
)
from prefect.client.schemas.filters import FlowRunFilterStateType as StateType
from prefect.client.schemas.objects import StateType as Kind
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.flow_runs import aresume_flow_run
from sqlalchemy import select
from typer.testing import CliRunner

from anime.cli import app as cli
from db.engine import session_scope
from db.models import (
    Cut,
    GenerationParams,
    Job,
    JobStatus,
    Phase,
    PhaseGate,
    ReviewDecision,
)
from flows.episode import render_episode
from tests.review.conftest import FAILING, api

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _run(project: str, blocks: tuple[str, str], **kwargs):
    thresholds, models = blocks
    return await render_episode(
        project,
        1,
        until=Phase.GENERATION,
        renderer="animatic",
        attempt_budget=1,
        thresholds_block=thresholds,
        scoring_block=models,
        return_state=True,
        **kwargs,
    )


def _cut_ids() -> list[int]:
    with session_scope() as s:
        return list(s.scalars(select(Cut.id).order_by(Cut.number)))


def _jobs() -> list[tuple[int, int, JobStatus, int]]:
    """(cut id, attempt, status, seed) of every keyframe job."""
    with session_scope() as s:
        rows = s.execute(
            select(Job.cut_id, Job.attempt, Job.status, GenerationParams.seed)
            .join(GenerationParams)
            .order_by(Job.cut_id, Job.attempt)
        )
        return [tuple(r) for r in rows]


def _last_gate() -> PhaseGate:
    with session_scope() as s:
        gate = s.scalars(select(PhaseGate).order_by(PhaseGate.id.desc())).first()
        s.expunge(gate)
        return gate


async def _report_markdown(run_id) -> str:
    """The run's markdown report (task runs reach the API by events: wait for it a little)."""
    deadline = time.monotonic() + 30
    async with get_client() as client:
        while True:
            found = await client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown"])),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.CREATED_DESC,
                limit=50,
            )
            reports = [a for a in found if a.key and a.key.endswith("-report")]
            if reports or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert reports, f"no report artifact for flow run {run_id}"
    return reports[0].data


async def test_approving_through_the_api_opens_the_gate(
    small_production, save_blocks, live_api, monkeypatch
):
    live = live_api()
    monkeypatch.setenv("ANIME_API_URL", live.url)
    blocks = await save_blocks(**FAILING)
    first = await _run(small_production, blocks)
    assert first.name == "GateClosed"
    # The run's report links to the domain API for its pictures, and the links work.
    markdown = await _report_markdown(first.state_details.flow_run_id)
    links = re.findall(r"\]\((http://127\.0\.0\.1:\d+/api/anime/jobs/\d+/thumbnail)\)", markdown)
    assert len(links) == 3 and "data:image" not in markdown
    assert f"{live.url}/review/episodes/1?needs_review=1" in markdown
    async with httpx.AsyncClient(follow_redirects=True) as web:
        shown = await web.get(links[0])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert {status for *_, status, _ in _jobs()} == {JobStatus.NEEDS_REVIEW}
    cuts = _cut_ids()

    async with api() as client:
        listed = (await client.get("/api/anime/episodes/1/review?needs_review=true")).json()
        assert listed["flagged"] == 3
        for cut_id in cuts:
            r = await client.post(
                f"/api/anime/cuts/{cut_id}/review",
                json={"outcome": "approved", "reviewer": "ann", "comment": "reads fine"},
            )
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["previous_verdict"] == "failed"
            assert {o["metric"] for o in body["overruled"]} >= {"aesthetic"}
        nobody = await client.post(
            f"/api/anime/cuts/{cuts[0]}/review", json={"outcome": "approved", "reviewer": ""}
        )
        assert nobody.status_code == 422 and "reviewer" in nobody.json()["error"]

    second = await _run(small_production, blocks)
    assert second.name == "Completed", second.message
    gate = _last_gate()
    assert gate.decision.value == "open"
    assert "Human verdicts (3)" in gate.explanation and "approved by ann" in gate.explanation
    assert len(_jobs()) == 3  # approved cuts are skipped, nothing rendered again
    with session_scope() as s:
        stored = s.scalars(select(ReviewDecision)).all()
        assert {(d.reviewer, d.comment, d.source) for d in stored} == {("ann", "reads fine", "api")}


async def test_a_rejected_cut_is_rendered_again_with_the_next_seed(small_production, save_blocks):
    blocks = await save_blocks(**FAILING)
    await _run(small_production, blocks)
    cuts = _cut_ids()
    before = {cut: seed for cut, _, _, seed in _jobs()}

    runner = CliRunner()
    rejected = runner.invoke(
        cli, ["review", "reject", small_production, "1", "E01S01C01", "--reviewer", "bo",
              "--comment", "scarf is blue"],
    )  # fmt: skip
    assert rejected.exit_code == 0, rejected.output
    assert "rejected by bo" in rejected.output
    for label in ("1.2", "1.3"):
        ok = runner.invoke(cli, ["review", "approve", small_production, "1", label])
        assert ok.exit_code == 0, ok.output
    listed = runner.invoke(cli, ["review", "list", small_production, "1", "--all"])
    assert "E01S01C01" in listed.output and "failed" in listed.output

    third = await _run(small_production, blocks)
    assert third.name == "GateClosed"  # the new attempt fails too: flagged again
    jobs = _jobs()
    assert [(c, a) for c, a, *_ in jobs] == [(cuts[0], 1), (cuts[0], 2), (cuts[1], 1), (cuts[2], 1)]
    (_, _, status, seed) = jobs[1]
    assert status is JobStatus.NEEDS_REVIEW and seed != before[cuts[0]]
    gate = _last_gate()
    assert "Human verdicts (2)" in gate.explanation
    assert "E01S01C01" in gate.explanation.split("Failed")[1].splitlines()[0]


async def _paused_run_id(timeout: float = 180) -> str:
    # A deadline for "it pauses at all", not a speed check: late in the suite the shared
    # SQLite test harness holds every earlier run and answers slowly (a CI run took > 60 s).
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=StateType(any_=[Kind.PAUSED]))
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=1,
            )
            if runs:
                return runs[0].id
            await asyncio.sleep(0.5)
    raise AssertionError("the run never paused for review")


async def test_a_paused_run_resumes_with_the_decisions_given(small_production, save_blocks):
    blocks = await save_blocks(**FAILING)
    running = asyncio.create_task(_run(small_production, blocks, review_timeout_s=120))
    run_id = await _paused_run_id()
    cuts = _cut_ids()
    answer = {"reviewer": "cho"}
    answer |= {f"cut_{c}": {"decision": "approve", "comment": "ok"} for c in cuts[:2]}
    answer |= {f"cut_{cuts[2]}": {"decision": "reject", "comment": "off model"}}
    await aresume_flow_run(run_id, run_input=answer)
    state = await asyncio.wait_for(running, 120)

    # The run went on with the decisions: 2 approved, 1 rejected, below the default 80%.
    assert state.name == "GateClosed", state.message
    report = await state.result()
    (phase,) = report.phases
    assert "2 of 3 counted items passed" in phase.explanation
    assert [c.decided_by for c in phase.cuts] == ["cho", "cho", "cho"]
    assert "Human verdicts (3)" in phase.explanation
    with session_scope() as s:
        stored = s.scalars(select(ReviewDecision).order_by(ReviewDecision.cut_id)).all()
        assert [(d.outcome.value, d.source) for d in stored] == [
            ("approved", "prefect"),
            ("approved", "prefect"),
            ("rejected", "prefect"),
        ]


async def test_a_review_wait_times_out_with_the_cuts_still_flagged(small_production, save_blocks):
    blocks = await save_blocks(**FAILING)
    state = await _run(small_production, blocks, review_timeout_s=3)
    assert state.is_completed() and state.name == "GateClosed", state.message
    assert {status for *_, status, _ in _jobs()} == {JobStatus.NEEDS_REVIEW}
    with session_scope() as s:
        assert s.scalars(select(ReviewDecision)).all() == []
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
        assert run.state.name == "GateClosed"
