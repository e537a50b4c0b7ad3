"""The render task every subject goes through (cut, character sheet, reproduction), and the
call that stores what it produced (in the subject's flow, not a task of its own: see
tasks/production.py).

Transient failures (connection lost, 5xx, timeouts, a restarted server) are Prefect task
retries with backoff; a judged failure is regeneration with a new seed, decided by the
attempt loop (flows/attempts.py). Both show per task in the Prefect UI.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff

from blocks.comfyui import retry_transient_only
from db import jobs as db_jobs
from db.renders import RenderResult
from tasks.production import in_session
from tasks.rendering.renderers import renderer_named
from tasks.rendering.request import RenderRequest


@task(
    name="render",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_transient_only,  # transient ComfyUI failures only
    cache_policy=NO_CACHE,
    task_run_name="render {request.name}",
)
async def render(request: RenderRequest) -> RenderResult:
    renderer = renderer_named(request.renderer)
    replaying = request.workflow is not None
    workflow = request.workflow if replaying else renderer.workflow(request)
    # A job this run opened, on the task's first try, cannot be on any server yet; a retry or
    # a re-run of an older job looks for its prompt first (and re-attaches to it).
    new_prompt = request.new_job and task_run.get_run_count() <= 1
    result = await renderer.execute(workflow, request, new_prompt=new_prompt)
    if not replaying:
        # A renderer that reads its prompts from its own graph (ComfyUI) has set them; the
        # others drew what the brief's prompt says.
        for stored, asked in (("positive_prompt", "positive"), ("negative_prompt", "negative")):
            result.params.setdefault(stored, request.parameters.get(asked))
    return result


async def store_render(job_id: int, result: RenderResult) -> None:
    await in_session(db_jobs.record_render, job_id, result)
