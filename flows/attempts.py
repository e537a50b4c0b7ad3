"""The attempt loop: render, store, judge, regenerate with the next seed, flag the best.

Every subject that is rendered and judged (a cut in a phase, a character sheet) goes through
this one loop; what differs per subject sits behind `AttemptSubject`. Each attempt renders with
the next seed of a deterministic sequence; a failed attempt is regenerated until the budget is
spent, then the best attempt is flagged for review (never dropped). Re-running is safe: a
stored but unjudged output is judged without rendering again, an output that could not be
judged is judged again (models may have been installed since), a failed attempt is never
rendered twice, and an attempt whose render errored is rendered again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prefect import get_run_logger
from prefect.utilities.annotations import quote

from blocks.comfyui import ComfyUICancelled
from db.vocabulary import JobStatus, Verdict
from tasks.judging import Judgement
from tasks.notify import notify_review
from tasks.production import (
    AttemptHistory,
    AttemptState,
    flag_for_review,
    record_cancelled,
    record_cancelled_now,
    record_error,
)
from tasks.rendering.request import RenderRequest
from tasks.rendering.task import render, store_render


class AttemptSubject(Protocol):
    label: str  # as people name it: "ep01-sc02-cut03", "aki sheet"
    phase: str  # the phase, as notifications name it
    project_id: int

    async def history(self) -> AttemptHistory:
        """What is stored of its attempts (read again after the loop, to pick the best)."""

    async def open_attempt(self, attempt: int) -> int:
        """The job of this attempt, marked running for this run."""

    def request(self, attempt: int, job_id: int, new_job: bool) -> RenderRequest: ...

    async def judge(self, job_id: int, outputs: list[str]) -> Judgement: ...


@dataclass
class AttemptsResult:
    status: str  # approved | needs_review
    job_id: int
    attempt: int
    attempts: int  # attempts judged in this budget
    outputs: list[str]
    verdict: Verdict
    # The judgement of this run (a subject's own kind, e.g. a sheet's with its embeddings);
    # None where the best attempt was judged by an earlier run.
    judgement: Judgement | None
    note: str = ""


STOPPED = "stopped while rendering: the run ended (another job's error, or a cancel)"


async def _render_and_store(request: RenderRequest, slot: Callable) -> list[str]:
    try:
        async with slot():
            # Quoted: Prefect would walk the whole request looking for futures it cannot hold.
            result = await render(quote(request))
    except ComfyUICancelled as exc:
        await record_cancelled(request.job_id, exc.detail)
        raise
    except asyncio.CancelledError:
        # Stopped from outside (a sibling job's error ended the task group, or the run was
        # cancelled): nothing stays `running`. Recorded without an await: asyncio cancels this
        # task again at each one, so an awaited record may never land before the process ends.
        with contextlib.suppress(Exception):
            record_cancelled_now(request.job_id, STOPPED)
        raise
    except Exception as exc:
        await record_error(request.job_id, f"{type(exc).__name__}: {exc}")
        raise
    await store_render(request.job_id, result)
    return result.paths


async def run_attempts(
    subject: AttemptSubject,
    history: AttemptHistory,
    budget: int,
    slot: Callable = contextlib.nullcontext,
) -> AttemptsResult:
    """Attempts ``history.fresh_from`` .. ``+ budget - 1``; ``slot``: held while rendering."""
    logger = get_run_logger()
    judged: dict[int, Judgement] = {}
    first = history.fresh_from
    for attempt in range(first, first + budget):
        previous = history.attempt(attempt)
        if previous is not None and previous.verdict is Verdict.FAILED:
            continue  # judged and failed in an earlier run: move on to the next seed
        if previous is not None and previous.outputs and previous.status is not JobStatus.ERROR:
            job_id, outputs = previous.job_id, previous.outputs  # stored already: judge it
        else:
            job_id = await subject.open_attempt(attempt)
            # A job no earlier run opened: no ComfyUI server can have its prompt yet.
            request = subject.request(attempt, job_id, new_job=previous is None)
            outputs = await _render_and_store(request, slot)
        judgement = await subject.judge(job_id, outputs)
        judged[job_id] = judgement
        logger.info("%s attempt %d: %s", subject.label, attempt, judgement.verdict.value)
        if judgement.passed:
            return AttemptsResult(
                status="approved",
                job_id=job_id,
                attempt=attempt,
                attempts=attempt,
                outputs=outputs,
                verdict=judgement.verdict,
                judgement=judgement,
            )
        if judgement.environmental:
            break  # a missing model or reference is not fixed by a new seed
    return await _flag_best(subject, budget, judged)


def _rank(attempt: AttemptState) -> tuple[int, float, int]:
    return (attempt.passed_metrics, attempt.margin, -attempt.attempt)


async def _flag_best(
    subject: AttemptSubject, budget: int, judged: dict[int, Judgement]
) -> AttemptsResult:
    history = await subject.history()
    done = [
        a for a in history.attempts if a.verdict is not None and a.attempt >= history.fresh_from
    ]
    if not done:
        raise RuntimeError(
            f"{subject.label}: no attempt of the budget ({budget}) could be judged; "
            "see the attempts' errors"
        )
    best = max(done, key=_rank)
    note = (
        f"flagged for review after {len(done)} attempt(s) of {budget}: "
        f"best is attempt {best.attempt} (job {best.job_id})"
    )
    await flag_for_review(best.job_id, note)
    await notify_review(subject.project_id, subject.label, subject.phase, note, best.job_id)
    get_run_logger().warning("%s %s", subject.label, note)
    return AttemptsResult(
        status="needs_review",
        job_id=best.job_id,
        attempt=best.attempt,
        attempts=len(done),
        outputs=best.outputs,
        verdict=best.verdict or Verdict.FAILED,
        judgement=judged.get(best.job_id),
        note=note,
    )
