"""The parameters of each deployment, as pydantic models: one model per deployment.

They are checked here before a run is created (CLI, domain API), and they are also the
parameter schema the deployments carry in Prefect (`strict_parameter_schema`), with
`additionalProperties: false`, so that Prefect's own REST API refuses an unknown or ill-typed
parameter instead of creating a run that crashes later.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from db.vocabulary import Phase
from flows.character_sheet import character_sheet
from flows.episode import render_episode
from flows.nightly import nightly_render
from flows.quality import quality_review
from flows.reproduce import reproduce_job

EPISODE_PHASES = (Phase.GENERATION, Phase.ANIMATION, Phase.QUALITY)


class DeploymentParams(BaseModel):
    # A misspelt parameter is an error, not a silently ignored value.
    model_config = ConfigDict(extra="forbid")

    # Rules across parameters, for the deployments that have them.
    @model_validator(mode="after")
    def _servers_for_comfyui(self):
        if getattr(self, "renderer", None) == "comfyui" and not getattr(
            self, "comfyui_servers", None
        ):
            raise ValueError("renderer 'comfyui' needs comfyui_servers (ComfyUI block names)")
        return self

    @model_validator(mode="after")
    def _phase_order(self):
        if "until" not in type(self).model_fields:
            return self
        for name in ("phase", "until"):
            if getattr(self, name) not in EPISODE_PHASES:
                raise ValueError(
                    f"{name}: an episode's phases are generation, animation and quality"
                )
        if EPISODE_PHASES.index(self.phase) > EPISODE_PHASES.index(self.until):
            raise ValueError(f"phase {self.phase.value!r} comes after until {self.until.value!r}")
        return self


def params_of(fn: Callable[..., Any], name: str) -> type[DeploymentParams]:
    """The flow function's own parameters (types, bounds, descriptions from flows/parameters.py,
    defaults), in its order, as a strict model: the signature is their one declaration."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    return create_model(name, __base__=DeploymentParams, **fields)


# Deployment name -> its parameters. The names are the flows' names (see prefect.yaml).
DEPLOYMENT_PARAMS: dict[str, type[DeploymentParams]] = {
    flow.name: params_of(flow.fn, "".join(w.title() for w in flow.name.split("-")) + "Params")
    for flow in (render_episode, nightly_render, character_sheet, reproduce_job, quality_review)
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
