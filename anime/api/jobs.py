"""Jobs: reproduce one, read its quality."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field

from db import api_queries
from deployments.trigger import trigger
from tasks.production import in_session

router = APIRouter(prefix="/api/anime", tags=["jobs"])

JobId = Path(ge=1, description="job id")


class ReproductionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comfyui_servers: list[str] | None = Field(
        None, description="ComfyUI servers, block names or URLs (default: the job's own)"
    )


class ReproductionStarted(BaseModel):
    job_id: int
    deployment: str
    flow_run_id: str
    flow_run_name: str
    ui_url: str | None


class Score(BaseModel):
    metric: str
    subject: str
    value: float | None
    threshold: float | None
    comparator: str
    verdict: str
    model: str
    reason: str | None


class RunTimes(BaseModel):
    """One run's work on the job: its outcome and seconds (queue wait, ComfyUI's execution,
    download, scoring, waiting out a server outage); None where not measured."""

    number: int
    status: str
    started_at: str
    finished_at: str | None
    error: str | None
    queue_wait_s: float | None
    execution_s: float | None
    download_s: float | None
    scoring_s: float | None
    outage_s: float | None


class JobQuality(BaseModel):
    job_id: int
    project: str
    phase: str
    kind: str
    status: str
    attempt: int
    verdict: str | None
    explanation: str
    cut_id: int | None
    character_id: int | None
    scores: list[Score]
    thresholds: dict[str, dict[str, Any]]
    runs: list[RunTimes]


@router.post(
    "/jobs/{job_id}/reproduce",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReproductionStarted,
    responses={404: {"description": "no such job"}, 409: {"description": "no stored workflow"}},
)
async def reproduce(
    job_id: int = JobId, body: ReproductionOptions | None = None
) -> ReproductionStarted:
    """Render the job again from its stored workflow (the `reproduce-job` deployment), on the
    server that rendered it unless `comfyui_servers` names others."""
    job = await in_session(api_queries.reproducible_job, job_id)
    parameters: dict[str, Any] = {"job_id": job.job_id}
    if body is not None and body.comfyui_servers:
        parameters["comfyui_servers"] = body.comfyui_servers
    run = await trigger("reproduce-job", parameters)
    return ReproductionStarted(
        job_id=job.job_id,
        deployment=run.deployment,
        flow_run_id=run.flow_run_id,
        flow_run_name=run.flow_run_name,
        ui_url=run.ui_url,
    )


@router.get("/quality/{job_id}", response_model=JobQuality, responses={404: {}})
async def quality(job_id: int = JobId) -> JobQuality:
    """A job's scores, the thresholds they were judged against, verdicts and explanation."""
    found = await in_session(api_queries.job_quality, job_id)
    return JobQuality.model_validate(asdict(found))
