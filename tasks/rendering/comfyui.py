"""The ComfyUI renderer: template + named parameters -> validated graph -> the server pool.

The prompt id is derived from the job and attempt, so a retried task or a re-run of a killed
flow re-attaches to a render still on the server instead of rendering twice. Graphs are
validated against the server's own /object_info before anything is queued.
"""

from __future__ import annotations

import asyncio
import functools
import json
import mimetypes
import time
from pathlib import Path
from typing import Any

from blocks.comfyui import ComfyUIPool, prompt_id_for, render_on
from blocks.comfyui.models import OutputFile, PromptResult
from blocks.comfyui.progress import run_logger
from blocks.comfyui.run import FinishedPrompt
from blocks.loop_local import loop_local
from db import jobs as db_jobs
from db.renders import RenderOutput, RenderResult, RenderTimes
from db.vocabulary import Phase
from tasks.cancel import ensure_not_cancelled
from tasks.production import in_session
from tasks.rendering.outputs import describe_file
from tasks.rendering.request import RenderRequest
from workflows import (
    canonical_json,
    extract_params,
    graph_sha256,
    load_template,
    render_template,
    validate_graph,
)

_catalogues: dict[str, dict[str, Any]] = {}
_pools: dict[tuple[str, ...], tuple[float, ComfyUIPool]] = {}
POOL_TTL_S = 60.0  # an edited server block is picked up within a minute


async def server_pool(server_names: list[str]) -> ComfyUIPool:
    """The pool over these server blocks, loaded once a minute per process, not per render:
    one block read per server and render was a tenth of an episode's API traffic, and one
    shared pool keeps its count of held slots and of servers found down."""
    if not server_names:
        raise ValueError("the comfyui renderer needs at least one ComfyUI server block name")
    key = tuple(server_names)
    async with _loading():
        found = _pools.get(key)
        if found is None or time.monotonic() - found[0] > POOL_TTL_S:
            found = _pools[key] = (time.monotonic(), await ComfyUIPool.load(server_names))
    return found[1]


async def _object_info(pool: ComfyUIPool) -> dict[str, Any]:
    """The first server's node catalogue, fetched once per process (servers of one pool are
    expected to carry the same nodes and models; a mismatch fails at submission, clearly)."""
    server = pool.servers[0]
    async with _loading():
        if server.base_url not in _catalogues:
            _catalogues[server.base_url] = await server.get_client().object_info()
    return _catalogues[server.base_url]


def _loading() -> asyncio.Lock:
    """Held while a cache above is filled: the cuts that start together wait for one load
    instead of each loading the same blocks and catalogue (docs/benchmarks.md, start-up)."""
    return loop_local("comfyui-render-cache", asyncio.Lock)


def bind_parameters(template: str, wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep the parameters the template declares; return them and the names it ignores."""
    declared = set(load_template(template).parameters)
    kept = {k: v for k, v in wanted.items() if k in declared and v is not None}
    return kept, sorted(k for k in wanted if k not in declared and wanted[k] is not None)


def _primary_first(outputs: list[RenderOutput], phase: Phase) -> list[RenderOutput]:
    """The output the phase is judged on goes first: the clip for animation, an image else."""
    animated = [o for o in outputs if (o.frames or 1) > 1]
    if phase is Phase.ANIMATION and animated:
        return animated[:1] + [o for o in outputs if o is not animated[0]]
    stills = [o for o in outputs if (o.frames or 1) == 1]
    return stills[:1] + [o for o in outputs if not stills or o is not stills[0]]


class ComfyUIRenderer:
    """Renders on the ComfyUI servers the request names, through its template."""

    name = "comfyui"

    def workflow(self, request: RenderRequest) -> dict[str, Any]:
        if not request.template:
            raise ValueError(f"{request.label}: the comfyui renderer needs a template")
        params, ignored = bind_parameters(
            request.template, {**request.parameters, "seed": request.seed}
        )
        if ignored:
            run_logger().info(
                "%s: template %s has no parameter(s) %s; not used",
                request.label,
                request.template,
                ignored,
            )
        return render_template(request.template, params)

    async def execute(
        self, workflow: dict[str, Any], request: RenderRequest, *, new_prompt: bool
    ) -> RenderResult:
        # Submitted in canonical key order: ComfyUI embeds json.dumps(prompt) in the files it
        # saves, and PostgreSQL's JSONB does not keep key order, so only a canonical order
        # makes a reproduction from the stored graph byte-identical.
        graph = json.loads(canonical_json(workflow))
        pool = await server_pool(request.servers)
        validate_graph(graph, await _object_info(pool), template=request.template)
        prompt_id = prompt_id_for(request.job_id, request.attempt)
        outcome = await render_on(
            pool,
            graph,
            prompt_id,
            Path(request.out_dir),
            label=request.name,
            new_prompt=new_prompt,
            finished=None if new_prompt else await finished_prompt(request.job_id, prompt_id),
            on_finished=functools.partial(record_prompt_finished, request.job_id),
            before_submit=functools.partial(ensure_not_cancelled, request.job_id),
        )
        outputs = [_described(file) for file in outcome.files]
        environment = outcome.environment.model_dump(exclude={"raw"}) if outcome.environment else {}
        return RenderResult(
            renderer="comfyui",
            server=outcome.server,
            prompt_id=prompt_id,
            outputs=_primary_first(outputs, request.phase),
            workflow=graph,
            workflow_sha256=graph_sha256(graph),
            environment={"renderer": "comfyui", "server": outcome.server, **environment},
            params={
                **extract_params(graph).model_dump(mode="json"),
                "template": request.template,
            },
            times=RenderTimes(
                queue_wait_s=outcome.timings.queue_wait_s,
                execution_s=outcome.timings.execution_s,
                download_s=outcome.timings.download_s,
                outage_s=outcome.timings.outage_s,
            ),
        )


async def finished_prompt(job_id: int, prompt_id: str) -> FinishedPrompt | None:
    """What an earlier run saw this prompt produce (ComfyUI's history does not survive a
    restart; the output files and this record do)."""

    def read(session) -> FinishedPrompt | None:
        run = db_jobs.finished_prompt(session, job_id, prompt_id)
        if run is None or not run.comfyui_server:
            return None
        sha256 = {a.uri.rpartition("/")[2]: a.sha256 for a in run.job.artifacts}
        return FinishedPrompt(
            server=run.comfyui_server,
            outputs=[OutputFile.model_validate(o) for o in run.outputs],
            sha256={
                o["filename"]: sha256[o["filename"]]
                for o in run.outputs
                if o.get("filename") in sha256
            },
        )

    return await in_session(read)


async def record_prompt_finished(job_id: int, server: str, result: PromptResult) -> None:
    if result.status != "success":
        return  # nothing to download again: a failure is raised, not recovered
    await in_session(
        db_jobs.record_prompt_finished,
        job_id,
        prompt_id=result.prompt_id,
        server=server,
        outputs=[o.model_dump(mode="json") for o in result.outputs],
    )


def _described(file) -> RenderOutput:
    guessed = mimetypes.guess_type(file.path.name)[0]
    mime = file.content_type or guessed or "application/octet-stream"
    described = describe_file(file.path, "image", mime)
    kind = "animation" if (described.frames or 1) > 1 else "image"
    return described.model_copy(update={"kind": kind})
