"""The parameters of each deployment, as pydantic models: one model per deployment.

They are checked here before a run is created (CLI, domain API), and they are also the
parameter schema the deployments carry in Prefect (`strict_parameter_schema`), with
`additionalProperties: false`, so that Prefect's own REST API refuses an unknown or ill-typed
parameter instead of creating a run that crashes later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from db.models.enums import Phase

Renderer = Literal["auto", "animatic", "comfyui"]
ProjectSlug = Field(min_length=1, max_length=100, description="project slug")
EPISODE_PHASES = (Phase.GENERATION, Phase.ANIMATION, Phase.QUALITY)


class DeploymentParams(BaseModel):
    # A misspelt parameter is an error, not a silently ignored value.
    model_config = ConfigDict(extra="forbid")


class RenderSettingsParams(DeploymentParams):
    """What every render deployment shares: renderer, servers, budget, blocks."""

    renderer: Renderer = Field("auto", description="auto picks ComfyUI when servers are given")
    comfyui_servers: list[str] | None = Field(
        None, description="ComfyUI server block names to render on"
    )
    attempt_budget: int = Field(3, ge=1, le=20, description="attempts per cut before review")
    thresholds_block: str | None = Field(None, description="QualityThresholds block name")
    scoring_block: str | None = Field(None, description="ScoringModels block name")

    @model_validator(mode="after")
    def _servers_for_comfyui(self):
        if self.renderer == "comfyui" and not self.comfyui_servers:
            raise ValueError("renderer 'comfyui' needs comfyui_servers (ComfyUI block names)")
        return self


class EpisodeTarget(DeploymentParams):
    project: str = ProjectSlug
    episode: int = Field(ge=1, description="episode number")
    phase: Phase = Field(Phase.GENERATION, description="phase to start from")
    until: Phase = Field(Phase.QUALITY, description="last phase to run")

    @model_validator(mode="after")
    def _phase_order(self):
        for name in ("phase", "until"):
            if getattr(self, name) not in EPISODE_PHASES:
                raise ValueError(
                    f"{name}: an episode's phases are generation, animation and quality"
                )
        if EPISODE_PHASES.index(self.phase) > EPISODE_PHASES.index(self.until):
            raise ValueError(f"phase {self.phase.value!r} comes after until {self.until.value!r}")
        return self


class CharacterTarget(DeploymentParams):
    project: str = ProjectSlug
    character: str = Field(min_length=1, max_length=100, description="character slug")


# The target's fields come first (pydantic orders inherited fields from the last base on),
# so the Prefect UI shows project and episode at the top, as the flows' signatures do.
class RenderEpisodeParams(RenderSettingsParams, EpisodeTarget):
    review_timeout_s: int | None = Field(
        None,
        ge=1,
        le=604800,
        description="wait this long for people's decisions on flagged cuts (None: no wait)",
    )


class NightlyRenderParams(RenderSettingsParams):
    pass


class CharacterSheetParams(RenderSettingsParams, CharacterTarget):
    pass


class ReproduceJobParams(DeploymentParams):
    job_id: int = Field(ge=1, description="the job to render again")
    comfyui_servers: list[str] | None = Field(
        None, description="ComfyUI server block names (ComfyUI jobs; default: its own server)"
    )


class QualityReviewParams(DeploymentParams):
    project: str = ProjectSlug
    episode: int = Field(ge=1, description="episode number")
    thresholds_block: str | None = Field(None, description="QualityThresholds block name")


# Deployment name -> its parameters. The names are the flows' names (see prefect.yaml).
DEPLOYMENT_PARAMS: dict[str, type[DeploymentParams]] = {
    "render-episode": RenderEpisodeParams,
    "nightly-render": NightlyRenderParams,
    "character-sheet": CharacterSheetParams,
    "reproduce-job": ReproduceJobParams,
    "quality-review": QualityReviewParams,
}


class ParameterError(ValueError):
    """Parameters a deployment would refuse; the message names each one and what is wrong."""

    def __init__(self, deployment: str, problems: list[str]) -> None:
        self.deployment = deployment
        self.problems = problems
        super().__init__(
            f"{deployment}: {len(problems)} bad parameter(s); no run was created\n  "
            + "\n  ".join(problems)
        )


def params_model(deployment: str) -> type[DeploymentParams]:
    """The parameter model of a deployment, by its flow's name (``render-episode`` or
    ``render-episode/<any deployment name>``)."""
    name = deployment.split("/")[0]
    try:
        return DEPLOYMENT_PARAMS[name]
    except KeyError:
        known = ", ".join(sorted(DEPLOYMENT_PARAMS))
        raise LookupError(f"no deployment {deployment!r} (deployments: {known})") from None


def _describe(error: dict[str, Any], model: type[DeploymentParams]) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"parameter {where!r} is not a parameter of this deployment (known: {known})"
    if not where:  # a rule across parameters
        return error["msg"].removeprefix("Value error, ")
    return f"parameter {where!r}: {error['msg']} (got {error.get('input')!r})"


def validate_parameters(deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the deployment will receive them (JSON-ready, only those given),
    or ParameterError naming every unknown or ill-typed one."""
    model = params_model(deployment)
    if not isinstance(parameters, dict):
        raise ParameterError(deployment, ["parameters must be a JSON object of name: value"])
    try:
        checked = model.model_validate(parameters)
    except ValidationError as exc:
        problems = [_describe(e, model) for e in exc.errors()]
        raise ParameterError(deployment, problems) from None
    # Only what was given: the deployment's own defaults stay in charge of the rest.
    return checked.model_dump(mode="json", include=set(parameters))


def strict_parameter_schema(model: type[DeploymentParams]) -> dict[str, Any]:
    """The OpenAPI parameter schema Prefect stores with a deployment and enforces on every
    run it creates: the model's own, in Prefect's layout (definitions, field positions)."""
    schema = model.model_json_schema(ref_template="#/definitions/{model}")
    definitions = schema.pop("$defs", {})
    properties = schema.get("properties", {})
    for position, name in enumerate(model.model_fields):
        properties[name]["position"] = position  # the order the Prefect UI shows them in
    return {
        "title": "Parameters",
        "type": "object",
        "properties": properties,
        "required": schema.get("required", []),
        "definitions": definitions,
        "additionalProperties": False,
    }
