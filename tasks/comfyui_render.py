"""Rendering cuts and sheets on ComfyUI: template + bindings -> validated graph -> pool.

The prompt id is derived from the job and attempt, so a retried task or a re-run of a killed
flow re-attaches to a render still on the server instead of rendering twice. Graphs are
validated against the server's own /object_info before anything is queued.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.runtime import task_run

from blocks.comfyui import ComfyUIPool, prompt_id_for
from blocks.loop_local import loop_local
from db.models import Phase
from tasks.comfyui import render_on
from tasks.outputs import RenderOutput, RenderResult, describe_file
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


async def _pool(server_names: list[str]) -> ComfyUIPool:
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
            _catalogues[server.base_url] = await server.object_info()
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


async def render_graph(
    graph: dict[str, Any],
    *,
    job_id: int,
    attempt: int,
    out_dir: Path,
    server_names: list[str],
    label: str | None = None,
    phase: Phase = Phase.GENERATION,
    template: str | None = None,
    new_prompt: bool = False,
) -> RenderResult:
    # Submitted in canonical key order: ComfyUI embeds json.dumps(prompt) in the files it
    # saves, and PostgreSQL's JSONB does not keep key order, so only a canonical order makes
    # a reproduction from the stored graph byte-identical.
    graph = json.loads(canonical_json(graph))
    pool = await _pool(server_names)
    validate_graph(graph, await _object_info(pool), template=template)
    prompt_id = prompt_id_for(job_id, attempt)
    outcome = await render_on(
        pool, graph, prompt_id, Path(out_dir), label=label, new_prompt=new_prompt
    )
    outputs = []
    for file in outcome.files:
        mime = (
            file.content_type
            or mimetypes.guess_type(file.path.name)[0]
            or "application/octet-stream"
        )
        described = describe_file(file.path, "image", mime)
        kind = "animation" if (described.frames or 1) > 1 else "image"
        outputs.append(described.model_copy(update={"kind": kind}))
    environment = outcome.environment.model_dump(exclude={"raw"}) if outcome.environment else {}
    return RenderResult(
        renderer="comfyui",
        server=outcome.server,
        prompt_id=prompt_id,
        outputs=_primary_first(outputs, phase),
        workflow=graph,
        workflow_sha256=graph_sha256(graph),
        environment={"renderer": "comfyui", "server": outcome.server, **environment},
        params=extract_params(graph).model_dump(mode="json"),
    )


async def render_cut_on_comfyui(job) -> RenderResult:
    """One attempt of a cut (tasks.render.CutRender) through its template."""
    brief = job.brief
    animating = job.phase is Phase.ANIMATION
    wanted = {
        "positive": job.prompt.positive,
        "negative": job.prompt.negative,
        "seed": job.seed,
        "width": brief.overrides.get("width"),
        "height": brief.overrides.get("height"),
        "frames": brief.frames if animating else 1,
        "fps": brief.fps,
        **{k: v for k, v in brief.overrides.items() if k not in ("seed",)},
    }
    params, ignored = bind_parameters(job.template, wanted)
    if ignored:
        get_run_logger().info(
            "%s: template %s has no parameter(s) %s; not used", brief.label, job.template, ignored
        )
    graph = render_template(job.template, params)
    return await render_graph(
        graph,
        job_id=job.job_id,
        attempt=job.attempt,
        out_dir=Path(job.out_dir),
        server_names=job.comfyui_servers,
        label=job.name,
        phase=job.phase,
        template=job.template,
        # A job created by this run, on the render task's first try, cannot be on any server
        # yet; a retry or a re-run of an older job looks for it first (and re-attaches).
        new_prompt=job.new_job and task_run.get_run_count() <= 1,
    )


async def render_sheet_on_comfyui(brief, seed, out_dir, job_id, attempt, settings) -> RenderResult:
    """A character sheet through the character_sheet template (four views, one batch)."""
    from tasks.prompts import character_prompt

    template = str(settings.sheet_template or "character_sheet")
    params, _ = bind_parameters(
        template,
        {
            "positive": f"{character_prompt(brief.character)}, {brief.style.style_prompt}",
            "negative": brief.style.negative_prompt or None,
            "seed": seed,
        },
    )
    graph = render_template(template, params)
    return await render_graph(
        graph,
        job_id=job_id,
        attempt=attempt,
        out_dir=Path(out_dir),
        server_names=settings.comfyui_servers,
        label=f"{brief.character.slug} sheet",
        phase=Phase.CONCEPT,
        template=template,
    )
