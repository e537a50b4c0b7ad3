"""The domain API over HTTP (ASGI transport), against the test database and Prefect server."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort
from sqlalchemy import select

from anime.api.app import create_app
from db import jobs as db_jobs
from db.engine import session_scope
from db.models import (
    Character,
    CharacterVariation,
    Cut,
    Episode,
    GateDecision,
    GateScope,
    JobKind,
    Phase,
    Project,
    Scene,
    Verdict,
)
from db.renders import RenderResult
from tasks.scoring.gates import MetricLine

pytestmark = pytest.mark.asyncio(loop_scope="session")


def api() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t")


def _ids() -> tuple[int, int, list[int]]:
    """(aki's character id, episode 1's id, its cut ids in order)."""
    with session_scope() as s:
        aki = s.scalar(select(Character.id).where(Character.slug == "aki"))
        episode = s.scalar(select(Episode.id).where(Episode.number == 1))
        cuts = s.scalars(
            select(Cut.id)
            .join(Scene)
            .where(Scene.episode_id == episode)
            .order_by(Scene.number, Cut.number)
        ).all()
    return aki, episode, list(cuts)


def _judged_job(cut_id: int, attempt: int, verdict: Verdict, *, workflow: bool = True) -> int:
    """A keyframe job of the cut, rendered (with a stored workflow) and judged."""
    with session_scope() as s:
        project_id = s.get(Cut, cut_id).scene.episode.project_id
        job, _ = db_jobs.get_or_create_job(
            s,
            project_id=project_id,
            phase=Phase.GENERATION,
            kind=JobKind.KEYFRAME,
            attempt=attempt,
            cut_id=cut_id,
            renderer="animatic",
        )
        if workflow:
            result = RenderResult(
                renderer="animatic",
                params={"seed": 7},
                workflow={"renderer": "animatic", "seed": 7},
                workflow_sha256="0" * 64,
                environment={"renderer": "animatic"},
            )
            db_jobs.record_render(s, job.id, result)
        lines = [
            MetricLine(
                metric="aesthetic",
                value=6.1 if verdict is Verdict.PASSED else 4.0,
                threshold=5.5,
                comparator=">=",
                verdict=verdict,
            ),
            MetricLine(
                metric="face_similarity",
                subject="aki",
                value=0.81,
                threshold=0.7,
                comparator=">=",
                verdict=Verdict.PASSED,
            ),
        ]
        db_jobs.record_judgement(
            s, job.id, verdict=verdict, explanation=f"job {verdict.value}", lines=lines
        )
        return job.id


async def test_openapi_schema_lists_every_route():
    async with api() as client:
        schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) >= {
        "/api/anime/jobs/{job_id}/reproduce",
        "/api/anime/quality/{job_id}",
        "/api/anime/characters/{character_id}/variations",
        "/api/anime/episodes/{episode_id}/scenes",
        "/api/anime/deployments/{deployment}/runs",
        "/health",
    }


async def test_quality_of_a_job(production):
    _, _, cuts = _ids()
    job_id = _judged_job(cuts[0], 1, Verdict.FAILED)
    async with api() as client:
        answer = await client.get(f"/api/anime/quality/{job_id}")
        missing = await client.get("/api/anime/quality/999999")
        malformed = await client.get("/api/anime/quality/first")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["verdict"], body["status"], body["phase"]) == ("failed", "failed", "generation")
    assert body["explanation"] == "job failed"
    scores = {(s["metric"], s["subject"]): s for s in body["scores"]}
    assert scores[("aesthetic", "")]["value"] == 4.0
    assert scores[("aesthetic", "")]["verdict"] == "failed"
    assert scores[("face_similarity", "aki")]["verdict"] == "passed"
    assert body["thresholds"] == {
        "aesthetic": {"threshold": 5.5, "comparator": ">="},
        "face_similarity[aki]": {"threshold": 0.7, "comparator": ">="},
    }
    assert missing.status_code == 404
    assert missing.json() == {"error": "no job with id 999999", "status": 404}
    assert malformed.status_code == 422 and "job_id" in malformed.json()["error"]


async def test_quality_shows_the_seconds_of_each_run_of_a_job(production):
    from db.renders import RenderTimes

    _, _, cuts = _ids()
    with session_scope() as s:
        project_id = s.scalar(select(Project.id))
        job, _ = db_jobs.get_or_create_job(
            s,
            project_id=project_id,
            phase=Phase.GENERATION,
            kind=JobKind.KEYFRAME,
            attempt=1,
            cut_id=cuts[0],
        )
        for _ in range(2):  # the first run crashed; the second took the job up again
            db_jobs.mark_running(
                s,
                job.id,
                flow_run_id=str(uuid.uuid4()),
                renderer="comfyui",
                story_bible_version=1,
            )
        times = RenderTimes(queue_wait_s=0.5, execution_s=1.5, download_s=0.25)
        db_jobs.record_render(s, job.id, RenderResult(renderer="comfyui", times=times))
        db_jobs.record_judgement(
            s, job.id, verdict=Verdict.PASSED, explanation="ok", lines=[], scoring_s=0.75
        )
        job_id, started = job.id, job.started_at
    async with api() as client:
        body = (await client.get(f"/api/anime/quality/{job_id}")).json()
    first, second = body["runs"]
    assert first["status"] == "crashed" and "taken up again" in first["error"]
    assert second["status"] == "rendered" and second["started_at"] == started.isoformat()
    seconds = ("queue_wait_s", "execution_s", "download_s", "scoring_s")
    assert [second[k] for k in seconds] == [0.5, 1.5, 0.25, 0.75]


async def test_character_variation_is_normalized_stored_and_unique(production):
    aki, _, _ = _ids()
    url = f"/api/anime/characters/{aki}/variations"
    async with api() as client:
        created = await client.post(
            url, json={"kind": " Outfit", "name": "Winter  Coat", "prompt": " long   red coat "}
        )
        again = await client.post(url, json={"kind": "outfit", "name": "winter-coat"})
        other_kind = await client.post(url, json={"kind": "pose", "name": "winter coat"})
        unknown = await client.post(
            "/api/anime/characters/999999/variations", json={"kind": "pose", "name": "x"}
        )
        bad_kind = await client.post(url, json={"kind": "hat", "name": "beanie"})
        extra = await client.post(url, json={"kind": "pose", "name": "x", "colour": "red"})
        escaping = await client.post(
            url, json={"kind": "pose", "name": "y", "reference_image": "../../etc/passwd"}
        )
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("kind", "name", "prompt", "character")} == {
        "kind": "outfit",
        "name": "winter-coat",
        "prompt": "long red coat",
        "character": "aki",
    }
    with session_scope() as s:
        stored = s.get(CharacterVariation, created.json()["id"])
        assert (stored.kind.value, stored.name, stored.prompt_delta) == (
            "outfit",
            "winter-coat",
            "long red coat",
        )
    assert again.status_code == 409
    assert again.json()["error"] == "character 'aki' already has the outfit 'winter-coat'"
    assert other_kind.status_code == 201  # same name, another kind: a different variation
    assert unknown.status_code == 404 and "no character with id 999999" in unknown.text
    assert bad_kind.status_code == 422 and "body.kind" in bad_kind.json()["error"]
    assert extra.status_code == 422 and "body.colour" in extra.json()["error"]
    assert escaping.status_code == 422 and "reference_image" in escaping.json()["error"]


async def test_episode_scenes_with_statuses_and_latest_gates(production):
    _, episode, cuts = _ids()
    _judged_job(cuts[0], 1, Verdict.FAILED)
    passed = _judged_job(cuts[0], 2, Verdict.PASSED)
    with session_scope() as s:
        first = s.get(Episode, episode)
        for decision, rate in (("closed", 0.5), ("open", 0.875)):
            db_jobs.record_phase_gate(
                s,
                project_id=first.project_id,
                episode_id=episode,
                scope=GateScope.EPISODE,
                phase=Phase.GENERATION,
                decision=GateDecision(decision),
                items_total=8,
                items_passed=int(rate * 8),
                pass_rate=rate,
                required_rate=0.8,
                explanation=f"gate {decision}",
                details={},
            )
            s.flush()
    async with api() as client:
        answer = await client.get(f"/api/anime/episodes/{episode}/scenes")
        missing = await client.get("/api/anime/episodes/999999/scenes")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["project"], body["number"]) == ("moonlit-courier", 1)
    assert [s["number"] for s in body["scenes"]] == [1, 2, 3]
    assert sum(len(s["cuts"]) for s in body["scenes"]) == 8
    first_cut = body["scenes"][0]["cuts"][0]
    assert first_cut["phases"]["generation"] == {
        "status": "passed",
        "verdict": "passed",
        "job_id": passed,
        "attempts": 2,
    }
    assert body["scenes"][0]["cuts"][1]["phases"] == {}  # not rendered yet
    assert body["gates"]["generation"]["decision"] == "open"  # the latest decision
    assert body["gates"]["generation"]["explanation"] == "gate open"
    assert missing.status_code == 404 and missing.json()["error"] == "no episode with id 999999"


async def test_reproduce_refuses_unknown_jobs_and_jobs_without_a_workflow(production):
    _, _, cuts = _ids()
    never_rendered = _judged_job(cuts[1], 1, Verdict.FAILED, workflow=False)
    async with api() as client:
        missing = await client.post("/api/anime/jobs/999999/reproduce")
        no_workflow = await client.post(f"/api/anime/jobs/{never_rendered}/reproduce")
        misnamed = await client.post(
            f"/api/anime/jobs/{never_rendered}/reproduce", json={"servers": ["gpu-1"]}
        )
    assert misnamed.status_code == 422 and "servers" in misnamed.text  # comfyui_servers, named
    assert missing.status_code == 404 and missing.json()["error"] == "no job with id 999999"
    assert no_workflow.status_code == 409
    assert "has no stored workflow to reproduce" in no_workflow.json()["error"]


async def _flow_run_count() -> int:
    async with get_client() as client:
        return len(await client.read_flow_runs(sort=FlowRunSort.ID_DESC, limit=200))


async def test_runs_are_refused_before_creation_when_a_parameter_is_wrong(prefect_harness):
    before = await _flow_run_count()
    async with api() as client:
        bad = await client.post(
            "/api/anime/deployments/render-episode/runs",
            json={"parameters": {"project": "moonlit-courier", "episode": 1, "colour": "red"}},
        )
        ill_typed = await client.post(
            "/api/anime/deployments/reproduce-job/runs", json={"parameters": {"job_id": "x"}}
        )
        unknown = await client.post("/api/anime/deployments/render-film/runs", json={})
        not_served = await client.post(
            "/api/anime/deployments/render-episode/nowhere/runs",
            json={"parameters": {"project": "moonlit-courier", "episode": 1}},
        )
    assert bad.status_code == 422
    assert any("'colour' is not a parameter" in p for p in bad.json()["problems"])
    assert ill_typed.status_code == 422 and "'job_id'" in ill_typed.json()["problems"][0]
    assert unknown.status_code == 404 and "no deployment 'render-film'" in unknown.text
    assert not_served.status_code == 503, not_served.text
    assert "'render-episode/nowhere' is not registered" in not_served.json()["error"]
    assert await _flow_run_count() == before


async def test_health_reports_database_prefect_and_each_comfyui_server(
    prefect_harness, db, tmp_path, databases
):
    from blocks.comfyui import ComfyUIServer
    from tests.comfyui_server import ComfyUITestServer
    from tests.ops.conftest import free_port

    names = [f"comfy-up-{uuid.uuid4().hex[:6]}", f"comfy-down-{uuid.uuid4().hex[:6]}"]
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.1) as comfy:
        await ComfyUIServer(base_url=comfy.url, slots=2).save(names[0])
        await ComfyUIServer(
            base_url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=1, read_timeout_s=1
        ).save(names[1])
        try:
            async with api() as client:
                healthy = await client.get("/health")
                databases.use("postgresql://nobody@127.0.0.1:1/nothing")
                down = await client.get("/health")
        finally:
            databases.use(db)
            async with get_client() as prefect:
                for name in names:
                    await prefect.delete_block_document(
                        (await prefect.read_block_document_by_name(name, "anime-comfyui-server")).id
                    )
    assert healthy.status_code == 200, healthy.text
    body = healthy.json()
    assert body["database"] == {"ok": True, "error": None}
    assert body["prefect"]["ok"] and body["prefect"]["url"].startswith("http://127.0.0.1")
    comfyui = {c["block"]: c for c in body["comfyui"]}
    assert comfyui[names[0]]["ok"] and comfyui[names[0]]["latency_s"] is not None
    assert not comfyui[names[1]]["ok"] and comfyui[names[1]]["error"]
    assert body["status"] == "degraded"  # a ComfyUI server is down; the studio still answers
    assert down.status_code == 503
    assert down.json()["status"] == "down" and not down.json()["database"]["ok"]
