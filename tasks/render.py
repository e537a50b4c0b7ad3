"""Render one attempt of a cut, store what it produced, and judge it.

Two renderers: ComfyUI (the real one) and the animatic (storyboards on any machine). Transient
render failures are Prefect task retries with backoff; a judged failure is regeneration with
a new seed, decided by the cut flow. Both show per task in the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from blocks.scoring import ScoringModels
from db import jobs as db_jobs
from db.briefs import CutBrief
from db.models import Phase
from tasks.animatic import load_frames, panel_spec, render_animatic
from tasks.comfyui import retry_transient_only
from tasks.outputs import RenderResult
from tasks.planning import RenderSettings
from tasks.production import in_session
from tasks.prompts import Prompt

Renderer = Literal["animatic", "comfyui"]


class CutRender(BaseModel):
    """One attempt to render: everything the renderer needs, serializable for the task record."""

    job_id: int
    attempt: int
    seed: int
    phase: Phase
    renderer: Renderer
    brief: CutBrief
    prompt: Prompt
    out_dir: str
    template: str | None = None
    source_image: str | None = None  # the approved keyframe, for the animation phase
    comfyui_servers: list[str] = []
    new_job: bool = False  # opened by this run: no ComfyUI server can have its prompt yet

    @property
    def name(self) -> str:
        return f"{self.brief.label}-{self.phase.value}-a{self.attempt:02d}"


def animatic_spec(job: CutRender) -> dict[str, Any]:
    brief = job.brief
    overrides = brief.overrides
    animating = job.phase is Phase.ANIMATION
    return panel_spec(
        label=brief.label,
        description=brief.description,
        dialogue=brief.dialogue,
        camera=brief.camera,
        cast=[
            {
                "slug": m.slug,
                "reference_image": m.reference_images[0] if m.reference_images else None,
                "position": m.position,
            }
            for m in brief.cast
        ],
        palette=brief.style.palette,
        width=int(overrides.get("width", 640)),
        height=int(overrides.get("height", 360)),
        seed=job.seed,
        frames=brief.frames if animating else 1,
        fps=brief.fps,
        source_image=job.source_image if animating else None,
    )


@task(
    name="render",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_transient_only,  # transient ComfyUI failures only
    cache_policy=NO_CACHE,
    task_run_name="render {job.brief.label} {job.phase.value} attempt {job.attempt}",
)
async def render(job: CutRender) -> RenderResult:
    if job.renderer == "animatic":
        spec = animatic_spec(job)
        result = await anyio.to_thread.run_sync(render_animatic, spec, Path(job.out_dir), job.name)
    else:
        from tasks.comfyui_render import render_cut_on_comfyui

        result = await render_cut_on_comfyui(job)
    result.params.update(
        positive_prompt=job.prompt.positive,
        negative_prompt=job.prompt.negative,
        template=job.template if job.renderer == "comfyui" else "animatic",
    )
    return result


@task(name="store-render", cache_policy=NO_CACHE)
async def store_render(job_id: int, result: RenderResult) -> None:
    await in_session(
        db_jobs.record_render,
        job_id,
        params=result.params,
        workflow=result.workflow,
        workflow_sha256=result.workflow_sha256,
        environment=result.environment,
        outputs=[o.model_dump() for o in result.outputs],
        prompt_id=result.prompt_id,
        server=result.server,
        extra={"renderer": result.renderer},
    )


class Judgement(BaseModel):
    verdict: str
    explanation: str
    environmental: bool  # could not judge for reasons a new seed cannot fix (missing models)
    summary: dict[str, float | None]


def _score(phase: Phase, output: str, brief: CutBrief, models: ScoringModels, wanted: set[str]):
    from tasks import judge as judging

    if phase is Phase.ANIMATION:
        return judging.score_clip(load_frames(output), brief, models, wanted)
    return judging.score_keyframe(output, brief, models, wanted)


@task(name="judge", cache_policy=NO_CACHE, task_run_name="judge {brief.label} job {job_id}")
async def judge(
    job_id: int, output: str, brief: CutBrief, phase: Phase, settings: RenderSettings
) -> Judgement:
    """Score the output (off the event loop, so the next cut renders meanwhile), decide, store."""
    from tasks.judge import decide, required_metrics

    thresholds, models = settings.thresholds, settings.models
    wanted = set(required_metrics(phase, brief, thresholds))
    results = await anyio.to_thread.run_sync(_score, phase, output, brief, models, wanted)
    decision = decide(results, phase, brief, thresholds)
    await in_session(
        db_jobs.record_judgement,
        job_id,
        verdict=decision.verdict,
        explanation=decision.explanation,
        lines=decision.lines,
        models={r.metric: r.model for r in results if r.model},
        details={(r.metric, r.subject or ""): r.details for r in results},
    )
    environmental = any(
        r.value is None and r.details.get("cause") == "environment" for r in results
    )
    return Judgement(
        verdict=decision.verdict.value,
        explanation=decision.explanation,
        environmental=environmental,
        summary={
            f"{line.metric}{'/' + line.subject if line.subject else ''}": line.value
            for line in decision.lines
        },
    )
