"""Judging as Prefect tasks: score an output off the event loop, decide its job, store both.

The scoring itself (tasks/scoring/) knows nothing of Prefect; these wrappers are the one place
the pipeline calls it from.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db import jobs as db_jobs
from db.briefs import CutBrief
from db.vocabulary import Phase, Verdict
from tasks.planning import RenderSettings
from tasks.production import in_session
from tasks.references import references_embedded
from tasks.reports import prepare_thumbnail


class Judgement(BaseModel):
    verdict: Verdict
    explanation: str
    environmental: bool  # could not judge for reasons a new seed cannot fix (missing models)
    summary: dict[str, float | None] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


class SheetJudgement(Judgement):
    value: float | None = None  # the sheet's consistency
    embeddings: dict[str, list[float] | None] = Field(default_factory=dict)  # per view
    model: str = ""


async def _store(job_id: int, decision: Any, results: list[Any], scoring_s: float) -> None:
    await in_session(
        db_jobs.record_judgement,
        job_id,
        scoring_s=scoring_s,
        verdict=decision.verdict,
        explanation=decision.explanation,
        lines=decision.lines,
        models={r.metric: r.model for r in results if r.model},
        details={(r.metric, r.subject or ""): r.details for r in results},
    )


def _environmental(results: list[Any]) -> bool:
    return any(r.value is None and r.details.get("cause") == "environment" for r in results)


def _score_cut(
    job_id: int,
    phase: Phase,
    output: str,
    brief: CutBrief,
    models: ScoringModels,
    wanted: set,
    template: str | None,
):
    from tasks.scoring.images import load_frames
    from tasks.scoring.judge import clip_loops, score_clip, score_keyframe

    prepare_thumbnail(job_id, output)
    if phase is Phase.ANIMATION:
        # The seam is judged by the template the clip was rendered with: the run's override
        # (--template) when there is one, not the cut's pin.
        loop = clip_loops(brief, template)
        return score_clip(load_frames(output), brief, models, wanted, loop=loop)
    return score_keyframe(output, brief, models, wanted)


@task(name="judge-cut", cache_policy=NO_CACHE, task_run_name="judge {brief.label} job {job_id}")
async def judge_cut(
    job_id: int, output: str, brief: CutBrief, phase: Phase, settings: RenderSettings
) -> Judgement:
    """Score the output (off the event loop, so the next cut renders meanwhile), decide, store."""
    from tasks.scoring.judge import decide, required_metrics

    await references_embedded()  # the run embeds them beside its first renders
    thresholds, models = settings.thresholds, settings.models
    wanted = set(required_metrics(phase, brief, thresholds))
    started = time.monotonic()
    results = await anyio.to_thread.run_sync(
        _score_cut, job_id, phase, output, brief, models, wanted, settings.template
    )
    decision = decide(results, phase, brief, thresholds)
    await _store(job_id, decision, results, time.monotonic() - started)
    return Judgement(
        verdict=decision.verdict,
        explanation=decision.explanation,
        environmental=_environmental(results),
        summary={
            f"{line.metric}{'/' + line.subject if line.subject else ''}": line.value
            for line in decision.lines
        },
    )


def score_sheet(
    paths: list[str],
    views: list[str],
    thresholds: QualityThresholds,
    models: ScoringModels,
    project_settings: dict | None = None,
) -> tuple[SheetJudgement, list[Any], Any]:
    """Do the sheet's faces agree with each other: one embedding per view, then consistency.

    The views are embedded with the project's identity model (settings.face_embedder), so the
    references an approved sheet adds are the ones that project's face gate compares with."""
    from tasks.scoring.face_embedder import FaceModelUnavailable, load_face_embedder
    from tasks.scoring.faces import main_face_embeddings, sheet_consistency_from_embeddings
    from tasks.scoring.gates import decide_job
    from tasks.scoring.results import MetricResult

    labels = {view: path for view, path in zip(views, paths, strict=False)}
    embeddings: dict[str, list[float] | None] = {}
    model = ""
    try:
        embedder = load_face_embedder(models.for_project(project_settings))
        found = main_face_embeddings(labels, embedder)
    except Exception as exc:  # a missing model or any error: could not judge, never a crash
        reason = (
            str(exc)
            if isinstance(exc, FaceModelUnavailable)
            else (f"sheet_consistency failed: {type(exc).__name__}: {exc}")
        )
        result = MetricResult(
            metric="sheet_consistency",
            value=None,
            reason=reason,
            details={"cause": "environment"},
        )
    else:
        result = sheet_consistency_from_embeddings(found, model=embedder.name)
        embeddings = {k: (None if v is None else v.tolist()) for k, v in found.items()}
        model = embedder.name
    decision = decide_job([result], Phase.CONCEPT, thresholds, required=["sheet_consistency"])
    judgement = SheetJudgement(
        verdict=decision.verdict,
        explanation=decision.explanation,
        value=result.value,
        environmental=_environmental([result]),
        summary={"sheet_consistency": result.value},
        embeddings=embeddings,
        model=model,
    )
    return judgement, [result], decision


@task(name="judge-sheet", cache_policy=NO_CACHE, task_run_name="judge sheet job {job_id}")
async def judge_sheet(
    job_id: int,
    paths: list[str],
    views: list[str],
    settings: RenderSettings,
    project_id: int | None = None,
) -> SheetJudgement:
    project_settings = None
    if project_id is not None:
        from db.face_calibration import project_settings as read_settings

        project_settings = await in_session(read_settings, project_id)
    started = time.monotonic()
    judgement, results, decision = await anyio.to_thread.run_sync(
        score_sheet, paths, views, settings.thresholds, settings.models, project_settings
    )
    await _store(job_id, decision, results, time.monotonic() - started)
    return judgement
