"""Projects, their characters and episodes, with the ids the other routes take."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Path
from pydantic import BaseModel

from db import api_queries
from tasks.production import in_session

router = APIRouter(prefix="/api/anime", tags=["projects"])

PROJECT = Path(description="project slug", min_length=1, max_length=100)


class ProjectOut(BaseModel):
    id: int
    slug: str
    name: str
    characters: int
    episodes: int


class VariationSummary(BaseModel):
    id: int
    kind: str
    name: str
    source: str  # "file" (the production file's) or "api" (added through this API)


class CharacterOut(BaseModel):
    id: int
    slug: str
    name: str
    variations: list[VariationSummary]


class EpisodeOut(BaseModel):
    id: int
    number: int
    title: str
    scenes: int
    cuts: int


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects() -> list[ProjectOut]:
    """Every project, with how many characters and episodes it has."""
    rows = await in_session(api_queries.list_projects)
    return [ProjectOut.model_validate(asdict(row)) for row in rows]


@router.get(
    "/projects/{project}/characters", response_model=list[CharacterOut], responses={404: {}}
)
async def list_characters(project: str = PROJECT) -> list[CharacterOut]:
    """The project's characters: ids for POST /characters/{id}/variations, and variations."""
    rows = await in_session(api_queries.list_characters, project)
    return [CharacterOut.model_validate(asdict(row)) for row in rows]


@router.get("/projects/{project}/episodes", response_model=list[EpisodeOut], responses={404: {}})
async def list_episodes(project: str = PROJECT) -> list[EpisodeOut]:
    """The project's episodes: ids for GET /episodes/{id}/scenes and the review page."""
    rows = await in_session(api_queries.list_episodes, project)
    return [EpisodeOut.model_validate(asdict(row)) for row in rows]
