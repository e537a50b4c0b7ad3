"""Start a run of any studio deployment, parameters checked before anything is created."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from deployments.trigger import TriggeredRun, trigger

router = APIRouter(prefix="/api/anime", tags=["runs"])


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)


@router.post(
    "/deployments/{deployment:path}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggeredRun,
    responses={404: {}, 422: {"description": "a parameter is unknown or ill-typed"}, 503: {}},
)
async def start_run(deployment: str, body: RunRequest) -> TriggeredRun:
    """`deployment`: render-episode, nightly-render, character-sheet, reproduce-job or
    quality-review. Unknown or ill-typed parameters: 422 naming each, and no run exists."""
    return await trigger(deployment, body.parameters)
