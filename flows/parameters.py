"""The flows' parameters, each declared once: its type, bounds and description.

The flows' signatures are typed with these, and the deployments' parameter models
(deployments/params.py) are derived from those signatures, so what the Prefect UI shows, what
Prefect's REST API enforces and what a flow accepts cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from db.vocabulary import Phase
from tasks.rendering.renderers import RENDERERS

ProjectSlug = Annotated[str, Field(min_length=1, max_length=100, description="project slug")]
CharacterSlug = Annotated[
    str, Field(min_length=1, max_length=100, description="character slug")
]
LookName = Annotated[
    str | None,
    Field(max_length=100, description="the character's look (default: the base look)"),
]
EpisodeNumber = Annotated[int, Field(ge=1, description="episode number")]
StartPhase = Annotated[Phase, Field(description="phase to start from")]
LastPhase = Annotated[Phase, Field(description="last phase to run")]
JobId = Annotated[int, Field(ge=1, description="the job to render again")]

# What every render shares: renderer, servers, budget, blocks (tasks.planning.resolve_settings).
# The renderers by name (tasks/rendering/renderers.py), so a new one is a choice everywhere.
RendererChoice = Annotated[
    Literal[("auto", *RENDERERS)],  # type: ignore[valid-type]
    Field(description="auto picks ComfyUI when servers are given"),
]
ComfyUIServers = Annotated[
    list[str] | None, Field(description="ComfyUI server block names to render on")
]
TemplateOverride = Annotated[
    str | None,
    Field(
        min_length=1,
        description="render every cut of the run with this ComfyUI template, whatever the "
        "cuts and the project pin (a smoke test: `preview` needs no model files)",
    ),
]
AttemptBudget = Annotated[int, Field(ge=1, le=20, description="attempts per cut before review")]
ThresholdsBlock = Annotated[str | None, Field(description="QualityThresholds block name")]
ScoringBlock = Annotated[str | None, Field(description="ScoringModels block name")]
ReviewTimeout = Annotated[
    int | None,
    Field(
        ge=1,
        le=604800,
        description="wait this long for people's decisions on flagged cuts (None: no wait)",
    ),
]
ReproductionServers = Annotated[
    list[str] | None,
    Field(description="ComfyUI server block names (ComfyUI jobs; default: its own server)"),
]
