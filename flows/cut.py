"""render_cut: one cut through one phase, through the attempt loop (flows/attempts.py).

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
from prefect.states import State
from prefect.utilities.annotations import quote

from blocks.comfyui import ComfyUICancelled
from db.briefs import CutBrief
from db.vocabulary import Phase
from flows.attempts import run_attempts
from flows.limits import render_slot
from flows.outcomes import cancelled_with
from tasks import production
from tasks.judging import Judgement, judge_cut
from tasks.planning import RenderSettings
from tasks.prompts import build_cut_prompt
from tasks.rendering.request import BoardFigure, RenderRequest, Storyboard
from tasks.reports import CutOutcome
from tasks.seeds import attempt_seed
from tasks.storage import cut_output_dir


class CutAttempts:
    """The cut's side of the attempt loop: its jobs, its render request, its judge."""

    def __init__(
        self, brief: CutBrief, phase: Phase, settings: RenderSettings, keyframe: str | None
    ) -> None:
        self.brief, self.phase, self.settings, self.keyframe = brief, phase, settings, keyframe
        self.label = brief.label
        self.project_id = brief.project_id

    async def history(self) -> production.CutState:
        return await production.cut_state(self.brief.cut_id, self.phase)

    async def open_attempt(self, attempt: int) -> int:
        target = production.AttemptTarget.of_cut(self.brief, self.phase)
        return await production.open_attempt(
            target, attempt, self.settings.renderer, flow_run.get_id()
        )

    def request(self, attempt: int, job_id: int, new_job: bool) -> RenderRequest:
        brief, phase = self.brief, self.phase
        animating = phase is Phase.ANIMATION
        prompt = build_cut_prompt(brief)
        return RenderRequest(
            renderer=self.settings.renderer,
            job_id=job_id,
            attempt=attempt,
            phase=phase,
            label=brief.label,
            project=brief.project_slug,
            name=f"{brief.label}-{phase.value}-a{attempt:02d}",
            out_dir=str(
                cut_output_dir(
                    Path(self.settings.artifacts_dir),
                    brief.project_slug,
                    brief.episode_number,
                    brief.scene_number,
                    brief.cut_number,
                    phase.value,
                    attempt,
                )
            ),
            seed=attempt_seed(
                f"{brief.project_slug}/{brief.label}/{phase.value}",
                attempt,
                brief.overrides.get("seed"),
            ),
            template=brief.template_for(phase, self.settings.template),
            parameters={
                "positive": prompt.positive,
                "negative": prompt.negative,
                "width": brief.overrides.get("width"),
                "height": brief.overrides.get("height"),
                "frames": brief.frames if animating else 1,
                "fps": brief.fps,
                **{k: v for k, v in brief.overrides.items() if k != "seed"},
            },
            board=Storyboard(
                description=brief.description,
                dialogue=brief.dialogue,
                camera=brief.camera,
                cast=[
                    BoardFigure(
                        slug=m.slug, reference_images=m.reference_images, position=m.position
                    )
                    for m in brief.cast
                ],
                palette=brief.style.palette,
                source_image=self.keyframe,
            ),
            servers=self.settings.comfyui_servers,
            new_job=new_job,
            run_started_at=self.settings.started_at,
        )

    async def judge(self, job_id: int, outputs: list[str]) -> Judgement:
        # The brief and settings quoted, as the render's request: nothing in them to resolve.
        brief, settings = quote(self.brief), quote(self.settings)
        return await judge_cut(job_id, outputs[0], brief, self.phase, settings)


@flow(
    name="render-cut",
    flow_run_name="{phase}-cut-{cut_id}",
    persist_result=False,
    validate_parameters=False,
)
async def render_cut(cut_id: int, phase: Phase, settings: RenderSettings) -> CutOutcome | State:
    """One cut through one phase. A cancelled cut ends Cancelled, its outcome as the state's
    data (read with `flows.outcomes.outcome_of`)."""
    logger = get_run_logger()
    phase = Phase(phase)
    start = await production.load_cut(cut_id, phase, settings.started_at)
    brief, state = start.brief, start.state
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

    if start.cancelled is not None:
        logger.warning("%s not rendered: %s", brief.label, start.cancelled)
        return _cancelled(outcome, f"cancelled: {start.cancelled}")
    subject = CutAttempts(brief, phase, settings, state.approved_keyframe)
    try:
        result = await run_attempts(subject, state, settings.attempt_budget, slot=render_slot)
    except ComfyUICancelled as exc:
        logger.warning("%s cancelled: %s", brief.label, exc.detail)
        return _cancelled(outcome, f"cancelled: {exc}")
    judgement = result.judgement
    explanation = judgement.explanation if judgement else ""
    return outcome.model_copy(
        update=dict(
            status=result.status,
            verdict=result.verdict.value,
            job_id=result.job_id,
            attempts=result.attempts,
            output=(result.outputs or [None])[0],
            explanation=f"{result.note}\n{explanation}".strip(),
            scores=judgement.summary if judgement else {},
        )
    )


def _cancelled(outcome: CutOutcome, explanation: str) -> State:
    """The cut's subflow ends Cancelled (as the Prefect UI should show it), with its outcome."""
    cancelled = outcome.model_copy(
        update=dict(status="cancelled", verdict="could_not_judge", explanation=explanation)
    )
    return cancelled_with(cancelled, explanation)
