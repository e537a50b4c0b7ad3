"""render_scene: the cuts of one scene, concurrently (admitted and bounded by the run's limits)."""

from __future__ import annotations

from prefect import flow

from db.vocabulary import Phase
from flows.cut import render_cut
from flows.limits import cut_admission, gather_or_stop
from tasks.planning import RenderSettings, ScenePlan
from tasks.reports import CutOutcome, Progress


@flow(
    name="render-scene",
    flow_run_name="{phase}-scene-{scene.number}",
    persist_result=False,
    validate_parameters=False,
)
async def render_scene(
    scene: ScenePlan, phase: Phase, settings: RenderSettings, progress: Progress | None = None
) -> list[CutOutcome]:
    async def one(cut_id: int) -> CutOutcome:
        async with cut_admission():
            outcome = await render_cut(cut_id, phase, settings)
        if progress is not None:
            await progress.advance()
        return outcome

    return await gather_or_stop(*(one(cut_id) for cut_id in scene.cut_ids))
