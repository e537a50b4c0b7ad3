"""render_scene: the cuts of one scene, concurrently (admitted and bounded by the run's limits)."""

from __future__ import annotations

from prefect import flow
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings
from prefect.states import State

from db.vocabulary import Phase
from flows import console  # noqa: F401  (the subflows' links kept off the terminal)
from flows.cut import render_cut
from flows.limits import cut_admission, gather_or_stop
from flows.outcomes import cancelled_with, outcome_of
from tasks.planning import RenderSettings, ScenePlan
from tasks.reports import CutOutcome, Progress

_quiet: tuple[Settings, Settings] | None = None  # (the run's settings, the same without beats)


def _without_heartbeat() -> SettingsContext:
    """The run's Prefect settings with no flow-run heartbeat, built once per settings object
    (a copy of Prefect's settings takes ~40 ms of CPU: once per cut would cost more than the
    heartbeat it saves)."""
    global _quiet
    context = get_settings_context()
    if _quiet is None or _quiet[0] is not context.settings:
        quiet = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _quiet = (context.settings, quiet)
    return SettingsContext(profile=context.profile, settings=_quiet[1])


@flow(
    name="render-scene",
    flow_run_name="{phase}-scene-{scene.number}",
    persist_result=False,
    validate_parameters=False,
)
async def render_scene(
    scene: ScenePlan, phase: Phase, settings: RenderSettings, progress: Progress | None = None
) -> list[CutOutcome] | State:
    """The scene's cuts; it ends Cancelled when every one of them was."""

    async def one(cut_id: int) -> CutOutcome:
        async with cut_admission():
            # No heartbeat of its own: a cut runs in the episode's process, whose run beats
            # for it. Each would be a thread and an event per cut (docs/benchmarks.md).
            with _without_heartbeat():
                state = await render_cut(cut_id, phase, settings, return_state=True)
        outcome = await outcome_of(state)
        if progress is not None:
            await progress.advance()
        return outcome

    outcomes = await gather_or_stop(*(one(cut_id) for cut_id in scene.cut_ids))
    if outcomes and all(o.status == "cancelled" for o in outcomes):
        return cancelled_with(outcomes, f"all {len(outcomes)} cuts cancelled")
    return outcomes
