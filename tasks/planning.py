"""What to render: an episode's scenes and cuts, the renderer, the blocks in force."""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.cancellations import database_now
from db.queries import get_episode
from db.vocabulary import Phase
from tasks.production import in_session
from tasks.rendering.renderers import RENDERERS
from tasks.storage import artifacts_root


class RenderSettings(BaseModel):
    """Everything a cut needs besides the cut itself; the same for every cut of a run.

    The blocks travel as plain data: a Block instance as a subflow parameter makes Prefect
    register an anonymous block document for every subflow run, about a second per cut.
    """

    renderer: str  # a name in tasks/rendering/renderers.py RENDERERS
    comfyui_servers: list[str] = Field(default_factory=list)
    attempt_budget: int = Field(3, ge=1, le=20)
    max_parallel: int = Field(2, ge=1)
    artifacts_dir: str
    sheet_template: str | None = None
    template: str | None = None  # one template for every cut of the run, whatever they pin
    thresholds_data: dict[str, Any] = Field(default_factory=dict)
    # The run's start, by the database's clock: what `anime cancel` since covers (db/cancellations).
    started_at: datetime | None = None
    models_data: dict[str, Any] = Field(default_factory=dict)

    @cached_property
    def thresholds(self) -> QualityThresholds:
        return QualityThresholds.model_validate(self.thresholds_data)

    @cached_property
    def models(self) -> ScoringModels:
        return ScoringModels.model_validate(self.models_data)


class ScenePlan(BaseModel):
    scene_id: int
    number: int
    cut_ids: list[int]


class EpisodePlan(BaseModel):
    project_id: int
    project_slug: str
    episode_id: int
    episode_number: int
    title: str
    scenes: list[ScenePlan]

    @property
    def label(self) -> str:
        return f"{self.project_slug} episode {self.episode_number}"

    @property
    def cut_count(self) -> int:
        return sum(len(s.cut_ids) for s in self.scenes)


def read_episode_plan(session, project: str, episode: int) -> EpisodePlan:
    row = get_episode(session, project, episode)
    return EpisodePlan(
        project_id=row.project_id,
        project_slug=project,
        episode_id=row.id,
        episode_number=row.number,
        title=row.title,
        scenes=[
            ScenePlan(scene_id=s.id, number=s.number, cut_ids=[c.id for c in s.cuts])
            for s in row.scenes
        ],
    )


class Refusal(BaseModel):
    """A user's mistake a task found (an unknown project or episode). The run ends Failed with
    this one line; raised, it would put the task's and the flow's tracebacks in a served
    run's log for what is no crash."""

    reason: str


@task(name="plan-episode", cache_policy=NO_CACHE)
async def plan_episode(project: str, episode: int) -> EpisodePlan | Refusal:
    try:
        return await in_session(read_episode_plan, project, episode)
    except LookupError as exc:
        return Refusal(reason=str(exc).strip("'\""))


async def load_block(block_cls, name: str | None):
    # No name: the defaults of SPEC.md, so a machine with no configured blocks still runs.
    return block_cls() if name is None else await block_cls.aload(name)


def _data(block: Any) -> dict[str, Any]:
    return block.model_dump(mode="json", exclude={"block_type_slug"})


@task(name="resolve-settings", cache_policy=NO_CACHE)
async def resolve_settings(
    renderer: str,
    comfyui_servers: list[str],
    attempt_budget: int,
    thresholds_block: str | None,
    scoring_block: str | None,
    template: str | None = None,
) -> RenderSettings:
    """Load the named blocks and decide the renderer: ComfyUI when servers are configured."""
    if template is not None:
        from workflows import load_template

        load_template(template)  # an unknown name fails here, naming the known ones
    if renderer == "comfyui" and not comfyui_servers:
        raise ValueError("renderer 'comfyui' needs at least one ComfyUI server block name")
    chosen = renderer if renderer != "auto" else ("comfyui" if comfyui_servers else "animatic")
    if chosen not in RENDERERS:
        raise ValueError(f"unknown renderer {chosen!r} (renderers: auto, {', '.join(RENDERERS)})")
    slots = 0
    if chosen == "comfyui":
        # The pool the renders will use, loaded once here and kept for them.
        from tasks.rendering.comfyui import server_pool

        slots = sum(server.slots for server in (await server_pool(comfyui_servers)).servers)
    return RenderSettings(
        renderer=chosen,
        comfyui_servers=comfyui_servers if chosen == "comfyui" else [],
        attempt_budget=attempt_budget,
        # One ahead of the slots, so a cut is scored while the next one renders.
        max_parallel=(slots + 1) if chosen == "comfyui" else max(1, os.cpu_count() or 1),
        artifacts_dir=str(artifacts_root()),
        template=template,
        started_at=await in_session(database_now),
        thresholds_data=_data(await load_block(QualityThresholds, thresholds_block)),
        models_data=_data(await load_block(ScoringModels, scoring_block)),
    )


PHASE_ORDER = [Phase.GENERATION, Phase.ANIMATION, Phase.QUALITY]


def phases_from(start: Phase, until: Phase) -> list[Phase]:
    if start not in PHASE_ORDER or until not in PHASE_ORDER:
        raise ValueError("episode phases are generation, animation and quality")
    return PHASE_ORDER[PHASE_ORDER.index(start) : PHASE_ORDER.index(until) + 1]
