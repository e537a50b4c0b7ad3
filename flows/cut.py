"""render_cut: one cut through one phase.

Each attempt renders with the next seed of a deterministic sequence and is judged; a failed
attempt is regenerated until the attempt budget is spent, then the best attempt is flagged for
review (never dropped). Re-running is safe: an approved cut is skipped, a stored but unjudged
output is judged without rendering again, an output that could not be judged is judged again
(models may have been installed since), and a failed attempt is never rendered twice.

People decide where the gates cannot (db/review.py): a cut a person approved is skipped like
any approved cut (its outcome names who decided); a cut a person rejected is rendered again on
the next run with a fresh attempt budget that starts at the attempt, and so the seed, after its
last attempt (attempts 4..6 after a rejection of 1..3), and only the new attempts can be
flagged again.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from db.briefs import CutBrief
from db.models import JobStatus, Phase, Verdict
from flows.limits import render_slot
from tasks import production
from tasks.notify import notify_review
from tasks.planning import RenderSettings
from tasks.prompts import build_cut_prompt
from tasks.render import CutRender, Judgement, judge, render, store_render
from tasks.reports import CutOutcome
from tasks.seeds import attempt_seed
from tasks.storage import cut_output_dir


def template_for(phase: Phase, brief: CutBrief) -> str:
    if phase is Phase.ANIMATION:
        return str(brief.project_settings.get("animation_template", "animatediff_loop"))
    return brief.template or str(brief.project_settings.get("default_template", "keyframe"))


def _attempt_job(
    brief: CutBrief,
    phase: Phase,
    attempt: int,
    job_id: int,
    settings: RenderSettings,
    source_image: str | None,
    new_job: bool,
) -> CutRender:
    return CutRender(
        job_id=job_id,
        attempt=attempt,
        seed=attempt_seed(
            f"{brief.project_slug}/{brief.label}/{phase.value}",
            attempt,
            brief.overrides.get("seed"),
        ),
        phase=phase,
        renderer=settings.renderer,
        brief=brief,
        prompt=build_cut_prompt(brief),
        template=template_for(phase, brief),
        source_image=source_image,
        comfyui_servers=settings.comfyui_servers,
        new_job=new_job,
        out_dir=str(
            cut_output_dir(
                Path(settings.artifacts_dir),
                brief.project_slug,
                brief.episode_number,
                brief.scene_number,
                brief.cut_number,
                phase.value,
                attempt,
            )
        ),
    )


async def _render_and_store(job: CutRender) -> str:
    try:
        async with render_slot():
            result = await render(job)
    except Exception as exc:
        await production.record_error(job.job_id, f"{type(exc).__name__}: {exc}")
        raise
    await store_render(job.job_id, result)
    return result.outputs[0].path


@flow(
    name="render-cut",
    flow_run_name="{phase}-cut-{cut_id}",
    persist_result=False,
    validate_parameters=False,
)
async def render_cut(cut_id: int, phase: Phase, settings: RenderSettings) -> CutOutcome:
    logger = get_run_logger()
    phase = Phase(phase)
    brief, state = await production.load_cut(cut_id, phase)
    outcome = CutOutcome(cut_id=cut_id, label=brief.label, phase=phase.value, status="", verdict="")

    if (done := state.passed) is not None:
        logger.info("%s already approved (job %s): skipped", brief.label, done.job_id)
        return outcome.model_copy(
            update=dict(
                status="approved",
                verdict="passed",
                job_id=done.job_id,
                attempts=done.attempt,
                skipped=True,
                output=(done.outputs or [None])[0],
                decided_by=done.decided_by,
            )
        )
    if phase is Phase.ANIMATION and state.approved_keyframe is None:
        logger.warning("%s has no approved keyframe: nothing to animate", brief.label)
        return outcome.model_copy(
            update=dict(
                status="not_ready",
                verdict="could_not_judge",
                explanation="no approved keyframe to animate",
            )
        )

    judgements: dict[int, Judgement] = {}
    first = state.fresh_from
    for attempt in range(first, first + settings.attempt_budget):
        previous = state.attempt(attempt)
        if previous is not None and previous.verdict is Verdict.FAILED:
            continue  # judged and failed in an earlier run: move on to the next seed
        if previous is not None and previous.outputs and previous.status is not JobStatus.ERROR:
            job_id, output = previous.job_id, previous.outputs[0]  # stored already: judge it
        else:
            job_id = await production.open_attempt(
                brief, phase, attempt, settings.renderer, flow_run.get_id()
            )
            # A job no earlier run opened: no ComfyUI server can have its prompt yet.
            fresh = previous is None
            job = _attempt_job(
                brief, phase, attempt, job_id, settings, state.approved_keyframe, fresh
            )
            output = await _render_and_store(job)
        verdict = await judge(job_id, output, brief, phase, settings)
        judgements[job_id] = verdict
        logger.info("%s attempt %d: %s", brief.label, attempt, verdict.verdict)
        if verdict.verdict == Verdict.PASSED.value:
            return outcome.model_copy(
                update=dict(
                    status="approved",
                    verdict="passed",
                    job_id=job_id,
                    attempts=attempt,
                    output=output,
                    explanation=verdict.explanation,
                    scores=verdict.summary,
                )
            )
        if verdict.environmental:
            break  # a missing model or reference is not fixed by a new seed

    return await _flag_best(brief, phase, settings, judgements, outcome)


async def _flag_best(
    brief: CutBrief,
    phase: Phase,
    settings: RenderSettings,
    judgements: dict[int, Judgement],
    outcome: CutOutcome,
) -> CutOutcome:
    state = await production.cut_state(brief.cut_id, phase)
    judged = [a for a in state.attempts if a.verdict is not None and a.attempt >= state.fresh_from]
    best = max(judged, key=lambda a: (a.passed_metrics, a.margin, -a.attempt))
    note = (
        f"flagged for review after {len(judged)} attempt(s) of {settings.attempt_budget}: "
        f"best is attempt {best.attempt} (job {best.job_id})"
    )
    await production.flag_for_review(best.job_id, note)
    await notify_review(brief.project_id, brief.label, phase.value, note, best.job_id)
    get_run_logger().warning("%s %s", brief.label, note)
    latest = judgements.get(best.job_id)
    return outcome.model_copy(
        update=dict(
            status="needs_review",
            verdict=(best.verdict or Verdict.FAILED).value,
            job_id=best.job_id,
            attempts=len(judged),
            output=(best.outputs or [None])[0],
            explanation=f"{note}\n{latest.explanation if latest else ''}".strip(),
            scores=latest.summary if latest else {},
        )
    )
