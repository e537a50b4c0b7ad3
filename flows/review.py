"""The pause for people: when a phase ends with cuts flagged for review, the run waits (if
asked to) for a person's decisions in the Prefect UI, then goes on with them.

The form has one entry per flagged cut (approve / reject / leave flagged, and a comment) and
the reviewer's name. A timeout ends the wait cleanly: the run goes on with the cuts still
flagged (so the gate decides as it would have without a wait).
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model

from db.vocabulary import Phase
from tasks.production import HumanDecision, record_review_decisions
from tasks.reports import CutOutcome
from tasks.review import resume_running
from tasks.scoring.gates import PhaseGateDecision

POLL_SECONDS = 2  # how often the paused run asks the Prefect API whether it was resumed

Choice = Literal["leave flagged", "approve", "reject"]


class CutChoice(BaseModel):
    decision: Choice = "leave flagged"
    comment: str = Field("", max_length=2000)


def field_name(cut_id: int) -> str:
    return f"cut_{cut_id}"


def review_form(flagged: list[CutOutcome]) -> type[RunInput]:
    """A RunInput with one CutChoice per flagged cut, titled with the cut's label."""
    fields: dict = {
        "reviewer": (str, Field("prefect-ui", min_length=1, description="who decides")),
    }
    for o in flagged:
        first = (o.explanation.splitlines() or [""])[0]
        fields[field_name(o.cut_id)] = (
            CutChoice,
            Field(default_factory=CutChoice, title=o.label, description=f"job {o.job_id}: {first}"),
        )
    return create_model("CutReview", __base__=RunInput, **fields)


def decisions_from(answer: BaseModel, flagged: list[CutOutcome], phase: Phase):
    reviewer = str(getattr(answer, "reviewer", "") or "prefect-ui")
    chosen: list[HumanDecision] = []
    for o in flagged:
        choice = getattr(answer, field_name(o.cut_id), None)
        if choice is None or choice.decision == "leave flagged":
            continue
        chosen.append(
            HumanDecision(
                cut_id=o.cut_id,
                phase=phase,
                outcome="approved" if choice.decision == "approve" else "rejected",
                reviewer=reviewer,
                comment=choice.comment,
                job_id=o.job_id,
            )
        )
    return chosen


async def wait_for_review(
    flagged: list[CutOutcome], phase: Phase, timeout_s: int
) -> list[HumanDecision]:
    """Pause the run for a person's decisions on the flagged cuts; store and return them."""
    logger = get_run_logger()
    form = review_form(flagged)
    labels = ", ".join(o.label for o in flagged)
    logger.warning(
        "%s: %d cut(s) flagged for review (%s); waiting up to %ds for decisions",
        phase.value,
        len(flagged),
        labels,
        timeout_s,
    )
    try:
        answer = await apause_flow_run(
            wait_for_input=form,
            timeout=timeout_s,
            poll_interval=POLL_SECONDS,
            key=f"review-{phase.value}",
        )
    except FlowPauseTimeout:
        logger.warning("no review within %ds: %s stay flagged", timeout_s, labels)
        await resume_running()
        return []
    decisions = decisions_from(answer, flagged, phase)
    if decisions:
        await record_review_decisions(decisions, "prefect")
    return decisions


def apply_decisions(cuts: list[CutOutcome], decisions: list[HumanDecision]) -> list[CutOutcome]:
    """The phase's outcomes with people's decisions in place of the automatic verdicts."""
    by_cut = {d.cut_id: d for d in decisions}
    updated = []
    for o in cuts:
        d = by_cut.get(o.cut_id)
        if d is None:
            updated.append(o)
            continue
        approved = d.outcome == "approved"
        note = f"{d.outcome} by {d.reviewer}" + (f": {d.comment}" if d.comment else "")
        updated.append(
            o.model_copy(
                update=dict(
                    status="approved" if approved else "rejected",
                    verdict="passed" if approved else "failed",
                    decided_by=d.reviewer,
                    explanation=f"{note}\n{o.explanation}".strip(),
                )
            )
        )
    return updated


def with_human_verdicts(decision: PhaseGateDecision, cuts: list[CutOutcome]) -> PhaseGateDecision:
    """The gate's explanation, naming the verdicts that are people's rather than the gates'."""
    human = [
        f"{o.label} {'approved' if o.verdict == 'passed' else 'rejected'} by {o.decided_by}"
        for o in cuts
        if o.decided_by
    ]
    if not human:
        return decision
    line = f"Human verdicts ({len(human)}): {', '.join(human)}."
    return decision.model_copy(update={"explanation": f"{decision.explanation}\n{line}"})
