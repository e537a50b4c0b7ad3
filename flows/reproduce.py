"""reproduce_job: re-submit a job's stored workflow with its stored seed and compare."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks.reproduce import (
    ReproductionReport,
    load_stored_job,
    open_reproduction,
    record_reproduction,
    rerender,
)
from tasks.storage import artifacts_root


@flow(name="reproduce-job", flow_run_name="reproduce-job-{job_id}", persist_result=False)
async def reproduce_job(
    job_id: int, comfyui_servers: list[str] | None = None
) -> ReproductionReport:
    """Render the exact stored workflow again; report identical bytes or the measured
    difference, and what changed in the environment (ComfyUI, PyTorch, device).

    ComfyUI jobs go to ``comfyui_servers`` (ComfyUI server block names); the server that
    rendered the original is recorded by URL, and a studio may have re-pointed its block."""
    stored = await load_stored_job(job_id)
    new_job_id, attempt = await open_reproduction(stored, flow_run.get_id())
    out_dir = artifacts_root() / "reproductions" / f"job-{job_id}" / f"attempt-{attempt:02d}"
    result = await rerender(stored, new_job_id, attempt, str(out_dir), comfyui_servers or [])
    report = await record_reproduction(stored, new_job_id, attempt, result)
    get_run_logger().info(report.summary())
    return report
