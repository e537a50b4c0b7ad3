"""reproduce_job: re-submit a job's stored workflow with its stored seed and compare."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.parameters import JobId, ReproductionServers
from tasks.production import open_attempt, record_error
from tasks.rendering.task import render
from tasks.reproduce import (
    ReproductionReport,
    load_stored_job,
    record_reproduction,
    reproduction_request,
    reproduction_target,
)
from tasks.storage import artifacts_root


@flow(name="reproduce-job", flow_run_name="reproduce-job-{job_id}", persist_result=False)
async def reproduce_job(
    job_id: JobId, comfyui_servers: ReproductionServers = None
) -> ReproductionReport:
    """Render the exact stored workflow again; report identical bytes or the measured
    difference, and what changed in the environment (ComfyUI, PyTorch, device).

    ComfyUI jobs go to ``comfyui_servers`` (block names or URLs), by default to the server
    that rendered the original (recorded by URL)."""
    stored = await load_stored_job(job_id)
    attempt = stored.next_attempt
    new_job_id = await open_attempt(
        reproduction_target(stored), attempt, stored.renderer, flow_run.get_id()
    )
    out_dir = artifacts_root() / "reproductions" / f"job-{job_id}" / f"attempt-{attempt:02d}"
    try:  # whatever fails, the reproduction job ends `error` with the reason, never `running`
        request = reproduction_request(stored, new_job_id, str(out_dir), comfyui_servers or [])
        result = await render(request)
        report = await record_reproduction(stored, new_job_id, result)
    except Exception as exc:
        await record_error(new_job_id, f"{type(exc).__name__}: {exc}")
        raise
    get_run_logger().info(report.summary())
    return report
