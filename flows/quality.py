"""quality_review: the episode as a whole: every cut needs an approved keyframe and animation;
continuity between consecutive cuts is measured and, with ``gate_on_continuity``, counted."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.vocabulary import GateScope, Phase
from flows.parameters import EpisodeNumber, ProjectSlug, ScoringBlock, ThresholdsBlock
from tasks.continuity import score_continuity
from tasks.planning import Refusal, load_block, plan_episode
from tasks.production import episode_review_items, record_phase_gate
from tasks.reports import CutOutcome, publish_phase_report
from tasks.scoring.gates import PhaseGateDecision, decide_phase_gate
from tasks.yields import publish_yield


@flow(name="quality-review", flow_run_name="{project}-ep{episode}-review", persist_result=False)
async def quality_review(
    project: ProjectSlug,
    episode: EpisodeNumber,
    thresholds_block: ThresholdsBlock = None,
    scoring_block: ScoringBlock = None,
) -> PhaseGateDecision | State:
    thresholds = await load_block(QualityThresholds, thresholds_block)
    models = await load_block(ScoringModels, scoring_block)
    plan = await plan_episode(project, episode)
    if isinstance(plan, Refusal):
        get_run_logger().error(plan.reason)
        return Failed(message=plan.reason)
    items = await episode_review_items(plan.episode_id)
    checks = await score_continuity(plan.episode_id, models, thresholds)
    gated = [(i.label, i.verdict) for i in items]
    if thresholds.gate_on_continuity:
        gated += [(c.label, c.verdict) for c in checks]
    decision = decide_phase_gate(gated, Phase.QUALITY, thresholds)
    await record_phase_gate(
        project_id=plan.project_id,
        episode_id=plan.episode_id,
        scope=GateScope.EPISODE,
        phase=Phase.QUALITY,
        decision=decision,
        flow_run_id=flow_run.get_id(),
    )
    outcomes = [
        CutOutcome(
            cut_id=i.cut_id,
            label=i.label,
            phase="quality",
            status="approved" if not i.reason else "needs_review",
            verdict=i.verdict.value,
            job_id=i.animation_job or i.keyframe_job,
            output=i.output,
            explanation=i.reason,
        )
        for i in items
    ]
    await publish_phase_report(plan.label, "quality", outcomes, decision.explanation)
    await publish_yield(plan.episode_id, plan.label)
    return decision
