"""nightly_render: whatever is pending across projects, rendered as one scheduled run."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.episode import render_episode
from flows.parameters import (
    AttemptBudget,
    ComfyUIServers,
    RendererChoice,
    ScoringBlock,
    ThresholdsBlock,
)
from tasks.pending import find_pending


class NightlyReport(BaseModel):
    pending: list[dict] = Field(default_factory=list)
    results: list[str] = Field(default_factory=list)


@flow(name="nightly-render", persist_result=False)
async def nightly_render(
    renderer: RendererChoice = "auto",
    comfyui_servers: ComfyUIServers = None,
    attempt_budget: AttemptBudget = 3,
    thresholds_block: ThresholdsBlock = None,
    scoring_block: ScoringBlock = None,
) -> NightlyReport:
    logger = get_run_logger()
    pending = await find_pending()
    report = NightlyReport(pending=[p.__dict__ for p in pending])
    if not pending:
        logger.info("nothing pending")
    for item in pending:
        logger.info(
            "%s episode %d: %d cut(s) pending in %s",
            item.project,
            item.episode,
            item.cuts_pending,
            item.phase,
        )
        state = await render_episode(
            item.project,
            item.episode,
            phase=item.phase,
            renderer=renderer,
            comfyui_servers=comfyui_servers,
            attempt_budget=attempt_budget,
            thresholds_block=thresholds_block,
            scoring_block=scoring_block,
            return_state=True,
        )
        outcome = state.result(raise_on_failure=False)
        summary = outcome.summary() if hasattr(outcome, "summary") else f"{state.name}: {outcome}"
        report.results.append(summary)
    return report
