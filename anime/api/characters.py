"""Characters: add a variation (outfit, expression, pose); list the looks."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from db import api_queries
from db.normalize import slugify
from db.vocabulary import VariationKind
from tasks.production import in_session

router = APIRouter(prefix="/api/anime", tags=["characters"])

_SPACES = re.compile(r"\s+")


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class VariationIn(BaseModel):
    """A prompt delta on top of the character's base prompt. `name` is stored as a slug
    ("Winter Coat" -> "winter-coat"), `kind` in lower case, the prompt with single spaces."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[VariationKind, BeforeValidator(_lower)]
    name: str = Field(min_length=1, max_length=100)
    prompt: str = Field("", max_length=4000)
    reference_image: str | None = Field(None, max_length=1000)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return slugify(value)

    @field_validator("prompt")
    @classmethod
    def _spaces(cls, value: str) -> str:
        return _SPACES.sub(" ", value).strip()

    @field_validator("reference_image")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if any(ord(c) < 32 for c in value):
            raise ValueError("must not contain control characters")
        if value.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", value):
            raise ValueError(
                f"must be a path inside the project's files (relative, no '..'), got {value!r}"
            )
        return value


class VariationOut(BaseModel):
    id: int
    character_id: int
    character: str
    kind: str
    name: str
    prompt: str
    reference_image: str | None


@router.post(
    "/characters/{character_id}/variations",
    status_code=status.HTTP_201_CREATED,
    response_model=VariationOut,
    responses={404: {"description": "no such character"}, 409: {"description": "duplicate"}},
)
async def add_variation(
    body: VariationIn, character_id: int = Path(ge=1, description="character id")
) -> VariationOut:
    """Store a new variation; 409 when the character has that kind and name already."""
    stored = await in_session(
        api_queries.add_variation,
        character_id,
        kind=body.kind,
        name=body.name,
        prompt=body.prompt,
        reference_image=body.reference_image,
    )
    return VariationOut.model_validate(asdict(stored))


class LookOut(BaseModel):
    id: int | None  # null: the base look
    name: str
    from_episode: int | None
    from_story: str | None  # "story@commit", or a story scene or chapter slug
    in_force_episodes: list[int]  # episode numbers it is in force for (unless a cut names another)
    prompt: str  # the base prompt for the base look, the look's delta for a later one
    attributes: dict[str, str]  # with the look's changes applied
    reference_ids: list[int]
    replaces_references: bool
    retired: bool
    face_thresholds: dict[str, float | None]


@router.get(
    "/characters/{character_id}/looks",
    response_model=list[LookOut],
    responses={404: {"description": "no such character"}},
)
async def list_looks(character_id: int = Path(ge=1, description="character id")) -> list[LookOut]:
    """The base look, then each later look: from which episode, its prompt delta, attributes,
    references and calibrated face thresholds."""
    rows = await in_session(api_queries.character_looks, character_id)
    return [LookOut.model_validate(asdict(row)) for row in rows]
