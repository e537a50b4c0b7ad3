"""The studio's deployments, read from prefect.yaml and made into Prefect deployments.

prefect.yaml is the single list: names, entrypoints, tags, schedules and the work pool. What
Prefect's own `prefect deploy` cannot add, this adds: the strict parameter schema of
deployments/params.py, so Prefect's REST API itself refuses unknown or ill-typed parameters.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.flows import Flow
from prefect.schedules import Cron
from prefect.utilities.callables import ParameterSchema
from prefect.utilities.importtools import import_object
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deployments.params import params_model, strict_parameter_schema

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
GPU_POOL = "anime-gpu"


class StrictParameterSchema(ParameterSchema):
    """Prefect's ParameterSchema drops keys it does not know; this one keeps the one that
    makes the API refuse parameters the flow does not have."""

    additionalProperties: bool = False


def _known_zone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as 'Asia/Tokyo' or 'UTC')"
        ) from None
    return value


def _cron(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        CronSchedule(cron=value)  # Prefect's own check, so the API will take it too
    except ValueError:
        raise ValueError(f"{value!r} is not a cron expression (m h dom mon dow)") from None
    return value


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str
    timezone: str = "UTC"
    active: bool = True

    _zone = field_validator("timezone")(_known_zone)
    _cron = field_validator("cron")(_cron)


class DeploymentSpec(BaseModel):
    """One entry of prefect.yaml, as far as the studio uses it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    work_pool: dict[str, Any] = Field(default_factory=dict)

    def load_flow(self) -> Flow:
        flow = import_object(self.entrypoint)
        if not isinstance(flow, Flow):
            raise TypeError(f"{self.entrypoint} is not a Prefect flow")
        return flow


class ScheduleOverrides(BaseModel):
    """The nightly schedule, as this machine wants it (options or environment)."""

    nightly_cron: str | None = None
    timezone: str | None = None

    _zone = field_validator("timezone")(_known_zone)
    _cron = field_validator("nightly_cron")(_cron)

    @classmethod
    def from_env(cls, cron: str | None = None, timezone: str | None = None) -> ScheduleOverrides:
        return cls(
            nightly_cron=cron or os.environ.get("ANIME_NIGHTLY_CRON") or None,
            timezone=timezone or os.environ.get("ANIME_NIGHTLY_TIMEZONE") or None,
        )


@cache
def _raw(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8")).get("deployments") or []


def deployment_specs(
    overrides: ScheduleOverrides | None = None, path: Path = PREFECT_YAML
) -> list[DeploymentSpec]:
    """Every deployment of prefect.yaml, with this machine's nightly schedule applied."""
    overrides = overrides or ScheduleOverrides()
    specs = []
    for i, raw in enumerate(_raw(path)):
        try:
            spec = DeploymentSpec.model_validate(raw)
            if spec.schedules and (overrides.nightly_cron or overrides.timezone):
                spec.schedules = [
                    ScheduleSpec(
                        cron=overrides.nightly_cron or s.cron,
                        timezone=overrides.timezone or s.timezone,
                        active=s.active,
                    )
                    for s in spec.schedules
                ]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ValueError(f"{path}: deployments[{i}] ({raw.get('name')}): {problems}") from None
        params_model(spec.name)  # every deployment has its parameter model
        specs.append(spec)
    return specs


def _strict(deployment: RunnerDeployment, name: str) -> RunnerDeployment:
    schema = strict_parameter_schema(params_model(name))
    deployment._parameter_openapi_schema = StrictParameterSchema(**schema)
    deployment.enforce_parameter_schema = True
    return deployment


async def runner_deployment(spec: DeploymentSpec, *, work_pool: bool = False) -> RunnerDeployment:
    """The Prefect deployment for one spec: served from this process (`work_pool=False`) or
    registered on the spec's work pool, for workers to pick up."""
    flow = spec.load_flow()
    deployment = await flow.ato_deployment(
        name=spec.name,
        description=spec.description or None,
        tags=spec.tags,
        parameters=spec.parameters,
        schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules]
        or None,
        enforce_parameter_schema=True,
        entrypoint_type=EntrypointType.MODULE_PATH,
        paused=False,  # a restart unpauses what an earlier serve paused on its way out
        work_pool_name=spec.work_pool.get("name") if work_pool else None,
        work_queue_name=spec.work_pool.get("work_queue_name") if work_pool else None,
    )
    return _strict(deployment, spec.name)


async def register_on_pool(
    overrides: ScheduleOverrides | None = None, pool: str | None = None
) -> list[str]:
    """Every deployment registered on its work pool (a process pool, created if missing),
    with the strict parameter schema. Returns one line per deployment."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    lines = []
    specs = deployment_specs(overrides)
    async with get_client() as client:
        for name in {pool or s.work_pool.get("name") or GPU_POOL for s in specs}:
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                await client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                        description="GPU hosts: one process worker per host",
                    )
                )
                lines.append(f"created work pool {name!r} (process)")
    for spec in specs:
        if pool:
            spec.work_pool = {**spec.work_pool, "name": pool}
        deployment = await runner_deployment(spec, work_pool=True)
        deployment_id = await deployment.aapply()
        lines.append(
            f"{spec.entrypoint} -> {deployment.flow_name}/{spec.name} on "
            f"{deployment.work_pool_name} ({deployment_id})"
        )
    return lines
