"""character_sheet (concept phase): render a character in several views, check that the
sheet's faces agree, and on approval make the images the character's reference library."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import BaseModel

from db.briefs import SheetBrief
from db.vocabulary import GateDecision, GateScope, Phase, Verdict
from flows.attempts import run_attempts
from flows.parameters import (
    AttemptBudget,
    CharacterSlug,
    ComfyUIServers,
    LookName,
    ProjectSlug,
    RendererChoice,
    ScoringBlock,
    ThresholdsBlock,
)
from tasks import production
from tasks.judging import SheetJudgement, judge_sheet
from tasks.notify import notify_phase_gate
from tasks.planning import RenderSettings, resolve_settings
from tasks.production import record_phase_gate
from tasks.prompts import character_prompt
from tasks.rendering.request import BoardFigure, RenderRequest, Storyboard
from tasks.scoring.gates import decide_phase_gate
from tasks.seeds import attempt_seed
from tasks.storage import character_output_dir

VIEWS = ["front", "three-quarter", "side", "back"]


class SheetReport(BaseModel):
    project: str
    character: str
    status: str  # approved | needs_review
    job_id: int | None
    attempts: int
    consistency: float | None
    references_added: int = 0
    explanation: str = ""


class SheetAttempts:
    """The sheet's side of the attempt loop: its jobs, its render request, its judge."""

    phase = Phase.CONCEPT.value

    def __init__(self, brief: SheetBrief, settings: RenderSettings) -> None:
        self.brief, self.settings = brief, settings
        self.label = brief.label
        self.project_id = brief.project_id

    async def history(self) -> production.AttemptHistory:
        character = self.brief.character
        return await production.sheet_history(character.character_id, character.look_id)

    async def open_attempt(self, attempt: int) -> int:
        target = production.AttemptTarget.of_sheet(self.brief)
        return await production.open_attempt(
            target, attempt, self.settings.renderer, flow_run.get_id()
        )

    def request(self, attempt: int, job_id: int, new_job: bool) -> RenderRequest:
        brief, character = self.brief, self.brief.character
        return RenderRequest(
            renderer=self.settings.renderer,
            job_id=job_id,
            attempt=attempt,
            phase=Phase.CONCEPT,
            label=brief.label,
            project=brief.project_slug,
            name=f"{character.slug}-sheet",
            out_dir=str(
                character_output_dir(
                    Path(self.settings.artifacts_dir), brief.project_slug, character.slug, attempt
                )
            ),
            seed=attempt_seed(f"{brief.project_slug}/{character.slug}/sheet", attempt),
            template=self.settings.sheet_template or "character_sheet",
            parameters={
                "positive": f"{character_prompt(character)}, {brief.style.style_prompt}",
                "negative": brief.style.negative_prompt or None,
            },
            board=Storyboard(
                cast=[
                    BoardFigure(slug=character.slug, reference_images=character.reference_images)
                ],
                palette=brief.style.palette,
                views=VIEWS,
            ),
            servers=self.settings.comfyui_servers,
            new_job=new_job,
        )

    async def judge(self, job_id: int, outputs: list[str]) -> SheetJudgement:
        return await judge_sheet(job_id, outputs, VIEWS, self.settings, self.project_id)


@flow(name="character-sheet", flow_run_name="{project}-{character}-sheet", persist_result=False)
async def character_sheet(
    project: ProjectSlug,
    character: CharacterSlug,
    renderer: RendererChoice = "auto",
    comfyui_servers: ComfyUIServers = None,
    attempt_budget: AttemptBudget = 3,
    thresholds_block: ThresholdsBlock = None,
    scoring_block: ScoringBlock = None,
    look: LookName = None,
):
    logger = get_run_logger()
    brief, history = await production.load_sheet(project, character, look)
    settings = await resolve_settings(
        renderer, comfyui_servers or [], attempt_budget, thresholds_block, scoring_block
    )
    subject = SheetAttempts(brief, settings)
    result = await run_attempts(subject, history, settings.attempt_budget)
    judgement = result.judgement
    added = 0
    if result.status == "approved" and isinstance(judgement, SheetJudgement):
        added = await production.approve_sheet(
            result.job_id, result.outputs, VIEWS, judgement.embeddings, judgement.model
        )
    explanation = judgement.explanation if judgement else ""
    report = SheetReport(
        project=project,
        character=character,
        status=result.status,
        job_id=result.job_id,
        attempts=result.attempts,
        consistency=judgement.value if isinstance(judgement, SheetJudgement) else None,
        references_added=added,
        explanation=f"{result.note}\n{explanation}".strip(),
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
