"""Episodes: scenes, cuts, where each cut stands, the latest gate of each phase."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from db import api_queries
from db import yields as db_yields
from tasks.production import in_session

router = APIRouter(prefix="/api/anime", tags=["episodes"])


class CutPhase(BaseModel):
    status: str
    verdict: str | None
    job_id: int
    attempts: int


class CutOut(BaseModel):
    id: int
    number: int
    description: str
    frames: int
    fps: int
    template: str | None
    phases: dict[str, CutPhase] = Field(
        description="per phase (generation, animation): the attempt that speaks for the cut"
    )


class SceneOut(BaseModel):
    id: int
    number: int
    title: str
    location: str
    time_of_day: str
    cuts: list[CutOut]


class GateOut(BaseModel):
    phase: str
    decision: str
    pass_rate: float
    required_rate: float
    items_total: int
    explanation: str
    decided_at: datetime
    flow_run_id: str | None


class EpisodeScenes(BaseModel):
    id: int
    project: str
    number: int
    title: str
    scenes: list[SceneOut]
    gates: dict[str, GateOut] = Field(description="latest decision per phase")


@router.get("/episodes/{episode_id}/scenes", response_model=EpisodeScenes, responses={404: {}})
async def scenes(episode_id: int = Path(ge=1, description="episode id")) -> EpisodeScenes:
    found = await in_session(api_queries.episode_scenes, episode_id)
    return EpisodeScenes.model_validate(asdict(found))


@router.get("/episodes/{episode_id}/yield", responses={404: {}})
async def episode_yield(episode_id: int = Path(ge=1)) -> dict:
    """First-pass yield, attempts per approved cut, render seconds per approved second of
    screen time, could-not-judge and human-decision shares: per episode, phase, scene and
    character (see db/yields.py for how each is counted)."""
    found = await in_session(db_yields.episode_yield, episode_id)
    return found.as_dict()
