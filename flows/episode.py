"""render_episode: an episode through its phases, each behind a phase gate.

generation (keyframes) -> gate -> animation (animate approved keyframes) -> gate -> quality
(episode review) -> gate. A closed gate ends the run in a clear, non-crashed state
("GateClosed"), with the gate's explanation stored and shown.

With ``review_timeout_s`` set, a phase that ends with cuts flagged for review pauses the run
for people's decisions in the Prefect UI (flows/review.py) before its gate; decisions made
there, on the review page, the API or the CLI count in the gate like automatic verdicts.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed
from pydantic import BaseModel, Field

from blocks.comfyui import slots_kept_for_run
from db.vocabulary import GateDecision, GateScope, Phase
from flows.limits import gather_or_stop, scene_admission, set_render_limit
from flows.outcomes import outcome_of
from flows.parameters import (
    AttemptBudget,
    ComfyUIServers,
    EpisodeNumber,
    LastPhase,
    ProjectSlug,
    RendererChoice,
    ReviewTimeout,
    ScoringBlock,
    StartPhase,
    TemplateOverride,
    ThresholdsBlock,
)
from flows.quality import quality_review
from flows.review import apply_decisions, wait_for_review, with_human_verdicts
from flows.scene import render_scene
from tasks.cancel import CancelWatch, cancel_on_request
from tasks.notify import notify_phase_gate
from tasks.planning import (
    EpisodePlan,
    Refusal,
    RenderSettings,
    ScenePlan,
    phases_from,
    plan_episode,
    resolve_settings,
)
from tasks.production import record_phase_gate
from tasks.recovery import recover_crashed_runs
from tasks.reel.ahead import ReelAhead, closing_ahead
from tasks.reel.export import ReelSummary
from tasks.reel.task import assemble_reel
from tasks.references import references_embedded, references_embedded_meanwhile
from tasks.rendering.comfyui import servers_loaded_meanwhile
from tasks.reports import CutOutcome, Progress, publish_phase_report
from tasks.scoring.gates import PhaseGateDecision, decide_phase_gate


class PhaseResult(BaseModel):
    phase: Phase
    decision: str
    pass_rate: float | None
    explanation: str
    cuts: list[CutOutcome] = Field(default_factory=list)
    progress_artifact_id: str | None = None


class EpisodeReport(BaseModel):
    project: str
    episode: int
    renderer: str
    phases: list[PhaseResult] = Field(default_factory=list)
    stopped_at: Phase | None = None  # the phase whose gate closed
    reel: ReelSummary | None = None  # the episode as it stands after the run

    def summary(self) -> str:
        lines = [f"{self.project} episode {self.episode} ({self.renderer} renderer)"]
        for p in self.phases:
            if p.decision == "cancelled":
                lines.append(f"  {p.phase.value}: cancelled ({p.explanation})")
                continue
            rate = "n/a" if p.pass_rate is None else f"{p.pass_rate:.0%}"
            lines.append(f"  {p.phase.value}: gate {p.decision} ({rate} of cuts passed)")
        if self.stopped_at:
            lines.append(f"  stopped: the {self.stopped_at.value} gate is closed")
        if self.reel:
            lines.append(f"  {self.reel.describe()}")
        return "\n".join(lines)


async def render_phase(
    plan: EpisodePlan,
    phase: Phase,
    settings: RenderSettings,
    review_timeout_s: int | None = None,
    watch: CancelWatch | None = None,
    ahead: ReelAhead | None = None,
) -> tuple[list[CutOutcome], PhaseGateDecision | None, str | None]:
    """Every cut of the episode through one phase, a pause for review if asked, the gate
    (None: the run was cancelled meanwhile, no gate is decided). ``ahead``: encodes each
    scene's cuts for the reel once the scene is done."""
    progress = Progress(plan.cut_count, f"{plan.label}: {phase.value}")
    await progress.start()

    async def one(scene: ScenePlan) -> list[CutOutcome]:
        async with scene_admission():
            state = await render_scene(scene, phase, settings, progress, return_state=True)
        outcomes = await outcome_of(state)
        if ahead is not None:
            ahead.add([o.cut_id for o in outcomes])
        return outcomes

    per_scene = await gather_or_stop(*(one(scene) for scene in plan.scenes))
    cuts = [outcome for scene in per_scene for outcome in scene]
    if watch is not None and watch.cancelled:
        await publish_phase_report(plan.label, phase.value, cuts, watch.reason, plan.episode_id)
        return cuts, None, progress.artifact_id
    flagged = [o for o in cuts if o.status == "needs_review"]
    if flagged and review_timeout_s:
        waiting = f"waiting up to {review_timeout_s}s for a person to review {len(flagged)} cut(s)"
        await publish_phase_report(plan.label, phase.value, cuts, waiting, plan.episode_id)
        cuts = apply_decisions(cuts, await wait_for_review(flagged, phase, review_timeout_s))
    decision = decide_phase_gate([(o.label, o.verdict) for o in cuts], phase, settings.thresholds)
    decision = with_human_verdicts(decision, cuts)
    await record_phase_gate(
        project_id=plan.project_id,
        episode_id=plan.episode_id,
        scope=GateScope.EPISODE,
        phase=phase,
        decision=decision,
        flow_run_id=flow_run.get_id(),
    )
    await publish_phase_report(plan.label, phase.value, cuts, decision.explanation, plan.episode_id)
    return cuts, decision, progress.artifact_id


@flow(name="render-episode", flow_run_name="{project}-ep{episode}-{phase}", persist_result=False)
async def render_episode(
    project: ProjectSlug,
    episode: EpisodeNumber,
    phase: StartPhase = Phase.GENERATION,
    until: LastPhase = Phase.QUALITY,
    renderer: RendererChoice = "auto",
    comfyui_servers: ComfyUIServers = None,
    attempt_budget: AttemptBudget = 3,
    thresholds_block: ThresholdsBlock = None,
    scoring_block: ScoringBlock = None,
    review_timeout_s: ReviewTimeout = None,
    template: TemplateOverride = None,
):
    """Render an episode from ``phase`` on; each next phase starts only when the gate opens.

    ``review_timeout_s``: wait that long for people's decisions on flagged cuts (None: no wait).
    ``template``: one ComfyUI template for every cut and phase of this run.
    """
    logger = get_run_logger()
    # The set-up steps need nothing of each other, so they run together and the first prompt
    # goes out that much sooner. Recovery gives back what a killed run left running and its
    # ComfyUI slots before any cut asks for one.
    _, plan, settings = await gather_or_stop(
        recover_crashed_runs(),
        plan_episode(project, episode),
        resolve_settings(
            renderer,
            comfyui_servers or [],
            attempt_budget,
            thresholds_block,
            scoring_block,
            template,
        ),
    )
    if isinstance(plan, Refusal):
        logger.error(plan.reason)
        return Failed(message=plan.reason)
    set_render_limit(settings.max_parallel)
    report = EpisodeReport(project=project, episode=episode, renderer=settings.renderer)

    phases = phases_from(Phase(phase), Phase(until))
    # The reel shows the last phase rendered: its cuts are encoded for it as scenes finish.
    rendered = [p for p in phases if p is not Phase.QUALITY]
    ahead = ReelAhead(plan.episode_id) if rendered else None

    # The face references are embedded and the ComfyUI servers loaded beside the first cuts,
    # not before them. A ComfyUI slot the run's renders give back stays with the run briefly
    # for its next render, until the run ends. A cancel in the Prefect UI (or `anime cancel`)
    # reaches a run started in a terminal too.
    async with (
        references_embedded_meanwhile(plan.project_id, settings.models),
        servers_loaded_meanwhile(settings.comfyui_servers),
        slots_kept_for_run(),
        closing_ahead(ahead),
        cancel_on_request(flow_run.get_id(), project, episode, settings.comfyui_servers) as watch,
    ):
        for current in phases:
            if current is Phase.QUALITY:
                cuts: list[CutOutcome] = []
                progress_id = None
                await references_embedded()
                decision = await quality_review(project, episode, thresholds_block, scoring_block)
            else:
                last = current is rendered[-1]
                cuts, decision, progress_id = await render_phase(
                    plan, current, settings, review_timeout_s, watch, ahead if last else None
                )
            if decision is None or watch.cancelled:
                report.phases.append(
                    PhaseResult(
                        phase=current,
                        decision="cancelled",
                        pass_rate=None,
                        explanation=watch.reason or "cancelled",
                        cuts=cuts,
                        progress_artifact_id=progress_id,
                    )
                )
                break
            report.phases.append(
                PhaseResult(
                    phase=current,
                    decision=decision.decision.value,
                    pass_rate=decision.pass_rate,
                    explanation=decision.explanation,
                    cuts=cuts,
                    progress_artifact_id=progress_id,
                )
            )
            logger.info(
                "%s gate %s\n%s", current.value, decision.decision.value, decision.explanation
            )
            await notify_phase_gate(plan.project_id, plan.label, decision)
            if decision.decision is not GateDecision.OPEN:
                report.stopped_at = current
                break
    if watch.cancelled:
        logger.warning("%s: %s", plan.label, watch.reason)
        return Cancelled(message=watch.reason, data=report)

    # Whatever gate closed, the episode is assembled as it stands: what people watch.
    report.reel = await assemble_reel(plan.episode_id, flow_run.get_id())
    if report.stopped_at is not None:
        explanation = report.phases[-1].explanation.splitlines()[0]
        return Completed(
            name="GateClosed",
            message=f"{report.stopped_at.value} gate closed: {explanation}",
            data=report,
        )
    return report
