"""Cancelling renders: the prompts of an episode's waiting or rendering jobs (one scene's,
one cut's) are interrupted or taken off the queue on every ComfyUI server saved in Prefect,
and the jobs end `cancelled`.

The prompt id of a job's attempt is derived (`prompt_id_for`), so a prompt is found on the
server even before the job records where it went. The run that rendered a cancelled job
sees its prompt interrupted, ends the job's run `cancelled` and gives its slot back; a job
cancelled while it waited for a slot is never submitted (`ensure_not_cancelled`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from blocks.comfyui import ComfyUICancelled, ComfyUIError, prompt_id_for
from db import jobs as db_jobs
from db.vocabulary import JobStatus
from tasks.production import in_session

CANCEL_TIMEOUT_S = 2.0  # per server: a server that does not answer by then is reported


@dataclass
class CancelledJob:
    job_id: int
    prompt_id: str
    outcomes: dict[str, str] = field(default_factory=dict)  # server URL -> what happened

    def describe(self) -> str:
        done = [
            f"{outcome} on {url}"
            for url, outcome in self.outcomes.items()
            if outcome in ("interrupted", "dequeued")
        ]
        return f"job {self.job_id}: cancelled" + (f" ({', '.join(done)})" if done else "")


async def cancel_renders(
    project: str, episode: int, *, scene: int | None = None, cut: int | None = None
) -> list[CancelledJob]:
    from deployments.serve import comfyui_server_blocks

    def pick(session) -> list[tuple[int, str]]:
        jobs = db_jobs.cancellable_jobs(session, project, episode, scene=scene, cut=cut)
        return [(j.id, j.comfyui_prompt_id or prompt_id_for(j.id, j.attempt)) for j in jobs]

    targets = await in_session(pick)
    servers = [server for _, server in await comfyui_server_blocks()]
    # The job is cancelled first: a render waiting for a slot checks it before submitting.
    for job_id, _ in targets:
        await in_session(db_jobs.record_cancelled, job_id, "cancelled by a person")

    async def on(server, prompt_id: str) -> tuple[str, str]:
        client = server.get_client()
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                outcome = await client.cancel(prompt_id)
                # ComfyUI stops an interrupted prompt at its next node step: wait for that,
                # so that "cancelled" means the server is free.
                while outcome == "interrupted" and (await client.lookup(prompt_id)).phase in (
                    "running",
                    "queued",
                ):
                    await asyncio.sleep(0.05)
                return server.base_url, outcome
        except TimeoutError:
            return server.base_url, f"still running after {CANCEL_TIMEOUT_S:g} s"
        except ComfyUIError as exc:
            return server.base_url, f"unreachable ({type(exc).__name__})"

    cancelled = []
    for job_id, prompt_id in targets:
        outcomes = await asyncio.gather(*(on(s, prompt_id) for s in servers))
        cancelled.append(CancelledJob(job_id, prompt_id, dict(outcomes)))
    return cancelled


async def ensure_not_cancelled(job_id: int) -> None:
    """Raise `ComfyUICancelled` for a job a person cancelled (before it is submitted)."""
    job = await in_session(db_jobs.get_job_status, job_id)
    if job is JobStatus.CANCELLED:
        raise ComfyUICancelled(f"job {job_id} was cancelled before it was submitted")
