"""Character sheets (concept phase): a character in several views, checked for consistency,
and on approval stored as the character's reference library with face embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from PIL import Image, ImageDraw, ImageOps
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db import briefs as db_briefs
from db import jobs as db_jobs
from db.models import JobKind, JobStatus, Phase, Verdict
from tasks.animatic import cut_out_backdrop, environment
from tasks.outputs import RenderResult, canonical_sha256, describe_file
from tasks.planning import RenderSettings
from tasks.production import in_session
from tasks.scores import MetricResult

VIEWS = ["front", "three-quarter", "side", "back"]


class SheetBrief(BaseModel):
    project_id: int
    project_slug: str
    character: db_briefs.CastBrief
    style: db_briefs.StyleBrief


class SheetAttempt(BaseModel):
    job_id: int
    attempt: int
    status: JobStatus
    verdict: Verdict | None
    outputs: list[str] = Field(default_factory=list)


class SheetJudgement(BaseModel):
    verdict: str
    explanation: str
    value: float | None
    environmental: bool
    embeddings: dict[str, list[float] | None] = Field(default_factory=dict)
    model: str = ""


def read_sheet_brief(session, project: str, character: str) -> SheetBrief:
    from sqlalchemy import select

    from db.models import Character, Project

    row = session.scalar(
        select(Character).join(Project).where(Project.slug == project, Character.slug == character)
    )
    if row is None:
        raise LookupError(f"project {project!r} has no character {character!r}")
    cast, style, project_id = db_briefs.load_character_brief(session, row.id)
    return SheetBrief(project_id=project_id, project_slug=project, character=cast, style=style)


@task(name="load-sheet-brief", cache_policy=NO_CACHE)
async def load_sheet_brief(project: str, character: str) -> SheetBrief:
    return await in_session(read_sheet_brief, project, character)


@task(name="sheet-attempts", cache_policy=NO_CACHE)
async def sheet_attempts(character_id: int) -> list[SheetAttempt]:
    def run(session) -> list[SheetAttempt]:
        return [
            SheetAttempt(
                job_id=j.id,
                attempt=j.attempt,
                status=j.status,
                verdict=j.verdict,
                outputs=[a.uri for a in j.artifacts],
            )
            for j in db_jobs.character_jobs(session, character_id, Phase.CONCEPT)
        ]

    return await in_session(run)


@task(name="open-sheet-attempt", cache_policy=NO_CACHE)
async def open_sheet_attempt(
    brief: SheetBrief, attempt: int, renderer: str, flow_run_id: str | None
) -> int:
    def run(session) -> int:
        job, _ = db_jobs.get_or_create_job(
            session,
            project_id=brief.project_id,
            phase=Phase.CONCEPT,
            kind=JobKind.CHARACTER_SHEET,
            attempt=attempt,
            character_id=brief.character.character_id,
            renderer=renderer,
        )
        db_jobs.mark_running(
            session,
            job.id,
            flow_run_id=flow_run_id,
            renderer=renderer,
            story_bible_version=brief.style.version,
        )
        return job.id

    return await in_session(run)


def sheet_spec(brief: SheetBrief, views: list[str], seed: int) -> dict:
    return {
        "renderer": "animatic",
        "kind": "character_sheet",
        "version": "1",
        "character": brief.character.slug,
        "references": brief.character.reference_images,
        "views": list(views),
        "palette": brief.style.palette,
        "size": 384,
        "seed": seed,
    }


def render_sheet_animatic(spec: dict, out_dir: Path, name: str) -> RenderResult:
    """One panel per view: the character's references, turned and placed per view."""
    import random

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec["seed"])
    size = spec["size"]
    refs = [r for r in spec["references"] if Path(r).is_file()]
    outputs = []
    for index, view in enumerate(spec["views"]):
        panel = Image.new("RGB", (size, size), (244, 242, 236))
        if refs:
            with Image.open(refs[index % len(refs)]) as src:
                figure = cut_out_backdrop(src.convert("RGBA"))
            figure = ImageOps.contain(figure, (size, int(size * 0.85)))
            if view == "back":
                figure = ImageOps.mirror(figure)
            x = (size - figure.width) // 2 + rng.randint(-6, 6)
            panel.paste(figure, (x, size - figure.height), figure)
        ImageDraw.Draw(panel).text((8, 6), f"{spec['character']} / {view}", fill=(30, 30, 30))
        path = out_dir / f"{name}-{index:02d}-{view}.png"
        panel.save(path, format="PNG")
        outputs.append(describe_file(path, "image", "image/png"))
    return RenderResult(
        renderer="animatic",
        outputs=outputs,
        workflow=spec,
        workflow_sha256=canonical_sha256(spec),
        environment=environment(),
        params={"seed": spec["seed"], "width": size, "height": size, "frames": len(outputs)},
    )


def judge_sheet_outputs(
    paths: list[str], views: list[str], thresholds: QualityThresholds, models: ScoringModels
) -> tuple[SheetJudgement, list[MetricResult], Any]:
    from tasks.faces import main_face_embeddings, sheet_consistency_from_embeddings
    from tasks.faces_embedder import FaceModelUnavailable, load_face_embedder
    from tasks.gates import decide_job

    labels = {view: path for view, path in zip(views, paths, strict=False)}
    try:
        embedder = load_face_embedder(models)
    except FaceModelUnavailable as exc:
        result = MetricResult(
            metric="sheet_consistency",
            value=None,
            reason=str(exc),
            details={"cause": "environment"},
        )
        embeddings: dict[str, list[float] | None] = {}
        model = ""
    else:
        found = main_face_embeddings(labels, embedder)
        result = sheet_consistency_from_embeddings(found, model=embedder.name)
        embeddings = {k: (None if v is None else v.tolist()) for k, v in found.items()}
        model = embedder.name
    decision = decide_job([result], Phase.CONCEPT, thresholds, required=["sheet_consistency"])
    return (
        SheetJudgement(
            verdict=decision.verdict.value,
            explanation=decision.explanation,
            value=result.value,
            environmental=result.details.get("cause") == "environment",
            embeddings=embeddings,
            model=model,
        ),
        [result],
        decision,
    )


@task(name="judge-sheet", cache_policy=NO_CACHE)
async def judge_sheet(
    job_id: int, paths: list[str], views: list[str], settings: RenderSettings
) -> SheetJudgement:
    judgement, results, decision = await anyio.to_thread.run_sync(
        judge_sheet_outputs, paths, views, settings.thresholds, settings.models
    )
    await in_session(
        db_jobs.record_judgement,
        job_id,
        verdict=decision.verdict,
        explanation=decision.explanation,
        lines=decision.lines,
        models={r.metric: r.model for r in results if r.model},
        details={(r.metric, r.subject or ""): r.details for r in results},
    )
    return judgement


@task(name="approve-sheet", cache_policy=NO_CACHE)
async def approve_sheet(
    job_id: int, paths: list[str], views: list[str], judgement: SheetJudgement
) -> int:
    rows = [
        (path, view, judgement.embeddings.get(view), judgement.model)
        for view, path in zip(views, paths, strict=False)
    ]
    return await in_session(db_jobs.approve_sheet, job_id, rows)
