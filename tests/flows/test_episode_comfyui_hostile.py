"""render_episode against a misbehaving ComfyUI test server: a /view that trickles ends the
jobs `error` with the stall named (never left running, never waited out as an outage), and
a server that echoes the auth token leaves it in no job row, error or Prefect log line."""

from __future__ import annotations

import logging
import uuid

from pydantic import SecretStr
from sqlalchemy import select

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from db.engine import session_scope
from db.models import Job, JobStatus, Phase
from flows.episode import render_episode
from tests.comfyui_server import ComfyUITestServer, ExecutionFault
from tests.flows.test_episode_comfyui import PASSING, preview_production  # noqa: F401

TOKEN = "ep1sode-t0ken-must-not-leak"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _register(server: ComfyUITestServer, **fields) -> str:
    name = f"comfy-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url=server.url, slots=1, concurrency_limit_name=name, **fields)
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])
    return name


async def _render(production: str, server_name: str, save_blocks) -> BaseException | None:
    thresholds, models = await save_blocks(**PASSING)
    try:
        await render_episode(
            production,
            1,
            renderer="comfyui",
            comfyui_servers=[server_name],
            until=Phase.GENERATION,
            thresholds_block=thresholds,
            scoring_block=models,
        )
    except Exception as exc:
        return exc
    return None


async def test_a_trickling_view_ends_the_jobs_in_error(
    preview_production,  # noqa: F811
    save_blocks,
    tmp_path,
):
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05, cache=False) as comfy:
        comfy.faults.trickle_view = (16, 0.1)  # 160 B/s
        name = await _register(comfy, download_grace_s=0.2, min_download_bytes_per_s=1024)
        raised = await _render(preview_production, name, save_blocks)
    assert raised is not None and "is stalling" in str(raised), raised
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
    assert jobs and JobStatus.RUNNING not in {j.status for j in jobs}
    stalled = [j for j in jobs if j.status is JobStatus.ERROR]
    assert stalled and all("is stalling" in (j.error or "") for j in stalled)
    # The others were stopped by the first error, and say so.
    assert all(j.status in (JobStatus.ERROR, JobStatus.CANCELLED) for j in jobs)


async def test_a_render_past_its_attempt_deadline_ends_the_job_in_error(
    preview_production,  # noqa: F811
    save_blocks,
    tmp_path,
):
    # The download keeps a rate no stage refuses; only the attempt's deadline ends it.
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05, cache=False) as comfy:
        comfy.faults.trickle_view = (16, 0.1)
        name = await _register(comfy, attempt_timeout_s=1.0, min_download_bytes_per_s=0)
        raised = await _render(preview_production, name, save_blocks)
    assert raised is not None and "attempt_timeout_s" in str(raised), raised
    with session_scope() as s:
        jobs = s.scalars(select(Job)).all()
    assert jobs and JobStatus.RUNNING not in {j.status for j in jobs}
    late = [j for j in jobs if j.status is JobStatus.ERROR]
    deadline = "past its 1 s deadline (the block's attempt_timeout_s)"
    assert late and all(deadline in (j.error or "") for j in late)
    assert all(comfy.url in j.error and "-generation-a01:" in j.error for j in late)


async def test_an_echoed_token_reaches_no_job_error_and_no_log(
    preview_production,  # noqa: F811
    save_blocks,
    tmp_path,
):
    handler = _Everything()
    logging.getLogger("prefect").addHandler(handler)
    try:
        auth = ("Authorization", f"Bearer {TOKEN}")
        with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.05, auth=auth) as comfy:
            comfy.faults.echo_header = "Authorization"
            comfy.faults.execution_error = ExecutionFault(message="refused")
            name = await _register(comfy, auth_token=SecretStr(TOKEN))
            raised = await _render(preview_production, name, save_blocks)
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    with session_scope() as s:
        errors = [j.error or "" for j in s.scalars(select(Job)).all()]
    assert any("refused (***)" in e for e in errors), errors  # it was echoed, and redacted
    assert all(TOKEN not in e for e in errors)
    assert TOKEN not in repr(raised)
    assert handler.lines and not [line for line in handler.lines if TOKEN in line]
