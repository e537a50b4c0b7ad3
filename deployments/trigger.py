"""Start a run of a deployment, with its parameters checked first; follow it if asked."""

from __future__ import annotations

from typing import Any

import anyio
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from pydantic import BaseModel

from deployments.params import params_model, validate_parameters


class DeploymentMissing(LookupError):
    """The deployment is not registered with the Prefect API in use."""


class TriggeredRun(BaseModel):
    deployment: str
    flow_run_id: str
    flow_run_name: str
    parameters: dict[str, Any]
    ui_url: str | None


def full_name(deployment: str) -> str:
    """``render-episode`` -> ``render-episode/render-episode`` (flow/deployment)."""
    params_model(deployment)  # unknown flows fail here, with the list of known ones
    return deployment if "/" in deployment else f"{deployment}/{deployment}"


def flow_run_url(flow_run_id: str) -> str | None:
    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


async def trigger(deployment: str, parameters: dict[str, Any]) -> TriggeredRun:
    """Create a run of `deployment`; ParameterError (nothing created) when a parameter is
    unknown or ill-typed, DeploymentMissing when nothing serves that deployment."""
    name = full_name(deployment)
    checked = validate_parameters(name, parameters)
    async with get_client() as client:
        try:
            found = await client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise DeploymentMissing(
                f"deployment {name!r} is not registered with the Prefect API at "
                f"{PREFECT_API_URL.value() or '(no PREFECT_API_URL)'}: start `anime server` or "
                "`anime serve`, or register it with `anime deploy`"
            ) from None
        run = await client.create_flow_run_from_deployment(found.id, parameters=checked)
    return TriggeredRun(
        deployment=name,
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        parameters=run.parameters,
        ui_url=flow_run_url(str(run.id)),
    )


async def wait_for_run(flow_run_id: str, timeout_s: float, poll_s: float = 1.0) -> FlowRun:
    """The run once it has finished (any final state); TimeoutError after `timeout_s`."""
    from uuid import UUID

    async with get_client() as client:
        with anyio.fail_after(timeout_s):
            while True:
                run = await client.read_flow_run(UUID(flow_run_id))
                if run.state is not None and run.state.is_final():
                    return run
                await anyio.sleep(poll_s)
