"""GET /health: the database, the Prefect API, every ComfyUI server block."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tasks.production import in_session

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 10.0


class Check(BaseModel):
    ok: bool
    error: str | None = None


class PrefectCheck(Check):
    url: str | None = None


class ComfyUICheck(Check):
    block: str
    server: str | None = None
    latency_s: float | None = None
    queue_remaining: int | None = None


class Health(BaseModel):
    status: str  # ok | degraded | down
    database: Check
    prefect: PrefectCheck
    comfyui: list[ComfyUICheck]


async def _database() -> Check:
    from sqlalchemy import text

    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            await in_session(lambda session: session.execute(text("SELECT 1")).scalar_one())
    except Exception as exc:
        return Check(ok=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    return Check(ok=True)


async def _prefect() -> PrefectCheck:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return PrefectCheck(ok=False, error="PREFECT_API_URL is not set")
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            async with get_client() as client:
                failure = await client.api_healthcheck()
    except Exception as exc:
        failure = exc
    if failure is not None:
        return PrefectCheck(ok=False, url=url, error=f"{type(failure).__name__}: {failure}")
    return PrefectCheck(ok=True, url=url)


async def _comfyui() -> list[ComfyUICheck]:
    from deployments.serve import comfyui_server_blocks

    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            blocks = await comfyui_server_blocks()
    except Exception:
        return []  # the Prefect check reports why blocks cannot be read
    checks: list[ComfyUICheck] = []

    async def one(name: str, server) -> None:
        with anyio.move_on_after(CHECK_TIMEOUT_S):
            report = await server.get_client().health()  # never raises
            checks.append(
                ComfyUICheck(
                    block=name,
                    server=report.server,
                    ok=report.ok,
                    error=report.error,
                    latency_s=report.latency_s,
                    queue_remaining=report.queue_remaining,
                )
            )
            return
        checks.append(ComfyUICheck(block=name, ok=False, error="no answer in time"))

    async with anyio.create_task_group() as tg:
        for name, server in blocks:
            tg.start_soon(one, name, server)
    return sorted(checks, key=lambda c: c.block)


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health() -> JSONResponse:
    """200 when the database and the Prefect API answer (status `degraded` when a ComfyUI
    server does not); 503 otherwise."""
    database, prefect, comfyui = await _database(), await _prefect(), await _comfyui()
    core_ok = database.ok and prefect.ok
    status = "down" if not core_ok else ("ok" if all(c.ok for c in comfyui) else "degraded")
    body = Health(status=status, database=database, prefect=prefect, comfyui=comfyui)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if core_ok else 503)
