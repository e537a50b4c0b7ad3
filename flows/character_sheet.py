"""character_sheet (concept phase): render a character in several views, check that the
sheet's faces agree, and on approval make the images the character's reference library."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import BaseModel

from db.models import GateDecision, GateScope, Phase, Verdict
from tasks import sheets
from tasks.gates import decide_phase_gate
from tasks.notify import notify_phase_gate, notify_review
from tasks.planning import resolve_settings
from tasks.production import flag_for_review, record_error, record_phase_gate
from tasks.render import store_render
from tasks.seeds import attempt_seed
from tasks.storage import character_output_dir


class SheetReport(BaseModel):
    project: str
    character: str
    status: str  # approved | needs_review
    job_id: int | None
    attempts: int
    consistency: float | None
    references_added: int = 0
    explanation: str = ""


@flow(name="character-sheet", flow_run_name="{project}-{character}-sheet", persist_result=False)
async def character_sheet(
    project: str,
    character: str,
    renderer: Literal["auto", "animatic", "comfyui"] = "auto",
    comfyui_servers: list[str] | None = None,
    attempt_budget: int = 3,
    thresholds_block: str | None = None,
    scoring_block: str | None = None,
):
    logger = get_run_logger()
    brief = await sheets.load_sheet_brief(project, character)
    settings = await resolve_settings(
        renderer, comfyui_servers or [], attempt_budget, thresholds_block, scoring_block
    )
    views = sheets.VIEWS
    previous = {a.attempt: a for a in await sheets.sheet_attempts(brief.character.character_id)}
    report = SheetReport(
        project=project,
        character=character,
        status="",
        job_id=None,
        attempts=0,
        consistency=None,
    )
    judged: dict[int, tuple[int, sheets.SheetJudgement, list[str]]] = {}
    for attempt in range(1, settings.attempt_budget + 1):
        before = previous.get(attempt)
        if before is not None and before.verdict is Verdict.FAILED:
            continue
        if before is not None and before.outputs:
            job_id, paths = before.job_id, before.outputs
        else:
            job_id = await sheets.open_sheet_attempt(
                brief, attempt, settings.renderer, flow_run.get_id()
            )
            seed = attempt_seed(f"{project}/{character}/sheet", attempt)
            out_dir = character_output_dir(
                Path(settings.artifacts_dir), project, character, attempt
            )
            try:
                result = await render_sheet(brief, views, seed, out_dir, job_id, attempt, settings)
            except Exception as exc:
                await record_error(job_id, f"{type(exc).__name__}: {exc}")
                raise
            await store_render(job_id, result)
            paths = [o.path for o in result.outputs]
        judgement = await sheets.judge_sheet(job_id, paths, views, settings)
        judged[attempt] = (job_id, judgement, paths)
        logger.info("%s sheet attempt %d: %s", character, attempt, judgement.verdict)
        if judgement.verdict == Verdict.PASSED.value:
            added = await sheets.approve_sheet(job_id, paths, views, judgement)
            report = report.model_copy(
                update=dict(
                    status="approved",
                    job_id=job_id,
                    attempts=attempt,
                    consistency=judgement.value,
                    references_added=added,
                    explanation=judgement.explanation,
                )
            )
            break
        if judgement.environmental:
            break

    if report.status != "approved":
        if not judged:
            raise RuntimeError(
                f"{character}: every attempt of the budget ({settings.attempt_budget}) has "
                "failed already; raise attempt_budget to render more"
            )
        best_attempt = max(judged, key=lambda a: (judged[a][1].value or -2.0, -a))
        job_id, judgement, _ = judged[best_attempt]
        note = (
            f"sheet flagged for review after {len(judged)} attempt(s): "
            f"best is attempt {best_attempt}"
        )
        await flag_for_review(job_id, note)
        await notify_review(brief.project_id, f"{character} sheet", "concept", note, job_id)
        report = report.model_copy(
            update=dict(
                status="needs_review",
                job_id=job_id,
                attempts=len(judged),
                consistency=judgement.value,
                explanation=f"{note}\n{judgement.explanation}",
            )
        )

    verdict = Verdict.PASSED.value if report.status == "approved" else Verdict.FAILED.value
    decision = decide_phase_gate([(character, verdict)], Phase.CONCEPT, settings.thresholds)
    await record_phase_gate(
        project_id=brief.project_id,
        episode_id=None,
        character_id=brief.character.character_id,
        scope=GateScope.CHARACTER,
        phase=Phase.CONCEPT,
        decision=decision,
        flow_run_id=flow_run.get_id(),
    )
    await notify_phase_gate(brief.project_id, f"{project} character {character}", decision)
    logger.info("%s", report.explanation)
    if decision.decision is not GateDecision.OPEN:
        return Completed(name="GateClosed", message=report.explanation.splitlines()[0], data=report)
    return report


async def render_sheet(brief, views, seed, out_dir, job_id, attempt, settings):
    if settings.renderer == "animatic":
        import anyio

        spec = sheets.sheet_spec(brief, views, seed)
        return await anyio.to_thread.run_sync(
            sheets.render_sheet_animatic, spec, out_dir, f"{brief.character.slug}-sheet"
        )
    from tasks.comfyui_render import render_sheet_on_comfyui

    return await render_sheet_on_comfyui(brief, seed, out_dir, job_id, attempt, settings)
