"""The ComfyUI renderer: template + named parameters -> validated graph -> the server pool.

The prompt id is derived from the job and attempt, so a retried task or a re-run of a killed
flow re-attaches to a render still on the server instead of rendering twice. Graphs are
validated against the server's own /object_info before anything is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import mimetypes
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prefect.runtime import task_run

from blocks.comfyui import (
    ComfyUIPool,
    ComfyUIServer,
    ComfyUITransientError,
    output_prefix,
    prompt_id_for,
    render_on,
)
from blocks.comfyui.models import OutputFile, PromptResult
from blocks.comfyui.progress import run_logger
from blocks.comfyui.run import FinishedPrompt
from blocks.loop_local import loop_local
from db import jobs as db_jobs
from db.identity import database_id
from db.renders import RenderOutput, RenderResult, RenderTimes
from db.vocabulary import Phase
from tasks.cancel import ensure_not_cancelled
from tasks.production import in_session
from tasks.rendering.outputs import describe_file
from tasks.rendering.request import RenderRequest
from workflows import (
    GraphProblem,
    GraphValidationError,
    canonical_json,
    extract_params,
    find_problems,
    graph_sha256,
    rebind_parameter,
    render_template,
    template_manifest,
)

_catalogues: dict[str, tuple[float, dict[str, Any]]] = {}
_pools: dict[tuple[str, ...], tuple[float, ComfyUIPool]] = {}
POOL_TTL_S = 60.0  # an edited server block is picked up within a minute


async def server_pool(server_names: list[str]) -> ComfyUIPool:
    """The pool over these servers (block names or URLs), loaded once a minute per process,
    not per render: one block read per server and render was a tenth of an episode's API
    traffic, and one shared pool keeps its count of held slots and of servers found down.

    Each load creates or updates the servers' concurrency limits (limit = slots), so a block
    saved without one, or a server given by URL, renders with its slots enforced."""
    if not server_names:
        raise ValueError("the comfyui renderer needs at least one ComfyUI server block name")
    key = tuple(server_names)
    async with _loading(key):
        found = _pools.get(key)
        if found is None or time.monotonic() - found[0] > POOL_TTL_S:
            pool = await ComfyUIPool.load(server_names)
            await pool.ensure_limits()
            found = _pools[key] = (time.monotonic(), pool)
    return found[1]


async def object_info(server: ComfyUIServer) -> dict[str, Any]:
    """A server's node catalogue (node types, model lists), fetched once a minute per process."""
    async with _loading(server.base_url):
        found = _catalogues.get(server.base_url)
        if found is None or time.monotonic() - found[0] > POOL_TTL_S:
            found = _catalogues[server.base_url] = (
                time.monotonic(),
                await server.get_client().object_info(),
            )
    return found[1]


class NoCapableServer(ValueError):
    """No server of the run has what a graph needs; the message names what, on which."""

    def __init__(self, template: str | None, problems: dict[str, list[GraphProblem]]) -> None:
        self.problems = problems
        what = f"template {template!r}" if template else "the workflow"
        lines = [
            f"  {server}:\n" + "\n".join(f"    - {problem}" for problem in found)
            for server, found in problems.items()
        ]
        super().__init__(
            f"{what} can render on none of its {len(problems)} ComfyUI servers; nothing was "
            "queued:\n" + "\n".join(lines)
        )


async def capable_pool(
    server_names: list[str],
    graph: dict[str, Any],
    template: str | None,
    uploaded: dict[str, set[str]] | None = None,
) -> ComfyUIPool:
    """The pool of the servers that can render `graph`: those whose /object_info has its node
    types and whose model lists hold its model files. None can: one error naming what is
    missing on which server (one server: the validation error itself). `uploaded`: images
    each server (base URL) was just given, newer than its cached catalogue."""
    pool = await server_pool(server_names)

    async def problems_on(server: ComfyUIServer) -> list[GraphProblem]:
        given = (uploaded or {}).get(server.base_url, set())
        return [
            p
            for p in find_problems(graph, await object_info(server), template)
            if not (p.kind == "missing_input_file" and any(n in p.message for n in given))
        ]

    if len(pool.servers) == 1:
        if found := await problems_on(pool.servers[0]):
            raise GraphValidationError(found, template)
        return pool
    capable: list[str] = []
    problems: dict[str, list[GraphProblem]] = {}
    found_on = await asyncio.gather(*(problems_on(server) for server in pool.servers))
    for name, server, found in zip(server_names, pool.servers, found_on, strict=True):
        if found:
            problems[f"{name} ({server.base_url})" if name != server.base_url else name] = found
        else:
            capable.append(name)
    if not capable:
        raise NoCapableServer(template, problems)
    if problems:
        run_logger().info(
            "%s: not rendered on %s (missing what it needs)", template, ", ".join(problems)
        )
    return pool if not problems else await server_pool(capable)


def probe_graph(template: str) -> dict[str, Any]:
    """The template as a cut renders it by default, required parameters filled with stand-ins:
    what `anime comfyui check` validates against a server."""
    stand_ins = {"str": "check", "int": 0, "float": 0.0, "bool": False, "image": "check.png"}
    spec = template_manifest(template).parameters
    required = {name: stand_ins.get(p.type, "check") for name, p in spec.items() if p.required}
    return render_template(template, required)


async def server_check(server: ComfyUIServer, template: str) -> list[GraphProblem]:
    """What the server lacks to render this template: node types and model files (input
    images are a cut's own, so they are not counted)."""
    problems = find_problems(probe_graph(template), await object_info(server), template)
    return [p for p in problems if p.kind != "missing_input_file"]


def _loading(key: object) -> asyncio.Lock:
    """Held while one entry of a cache above is filled: the cuts that start together wait for
    one load instead of each loading the same blocks and catalogue (docs/benchmarks.md,
    start-up); different servers' catalogues load side by side."""
    return loop_local("comfyui-render-cache", dict).setdefault(key, asyncio.Lock())


async def _warm_up(server_names: list[str]) -> None:
    try:
        pool = await server_pool(server_names)
        await asyncio.gather(*(object_info(s) for s in pool.servers), return_exceptions=True)
    except Exception as exc:  # the first render meets it again, and says it
        run_logger().debug("ComfyUI servers not loaded ahead: %s", exc)


@contextlib.asynccontextmanager
async def servers_loaded_meanwhile(server_names: list[str]) -> AsyncIterator[None]:
    """Every server's node catalogue (`/object_info`, the largest answer ComfyUI gives)
    fetched side by side while the run creates its first cut runs, not by the first render,
    whose prompt waited for them one by one. A render that comes first waits for the fetch
    under way (`_loading`); one that fails here is met, and said, by the render again."""
    loading = asyncio.ensure_future(_warm_up(server_names)) if server_names else None
    try:
        yield
    finally:
        if loading is not None:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)


def bind_parameters(template: str, wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep the parameters the template declares; return them and the names it ignores."""
    declared = set(template_manifest(template).parameters)
    kept = {k: v for k, v in wanted.items() if k in declared and v is not None}
    return kept, sorted(k for k in wanted if k not in declared and wanted[k] is not None)


def content_name(path: Path) -> str:
    """The name an image has on every ComfyUI server: from its bytes, so the same image is
    uploaded once per server and the graph (and its sha256) is the same everywhere."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"anime-{digest[:32]}{path.suffix.lower() or '.png'}"


def pipeline_images(request: RenderRequest) -> dict[str, Any]:
    """The images the pipeline hands a template by parameter name: the cast's first reference
    (IPAdapter / FaceID) and the approved keyframe an animation starts from."""
    board = request.board
    found: dict[str, Any] = {}
    references = [image for figure in board.cast for image in figure.reference_images]
    if references:
        found["reference_image"] = references[0]
    if board.source_image:
        found["init_image"] = board.source_image
    return found


def template_inputs(
    request: RenderRequest,
) -> tuple[dict[str, Any], list[str], dict[str, Path]]:
    """The template's parameters, the names it ignores, and the local images to upload
    (content-addressed name -> file): every image parameter (and a ControlNet's image) that
    names a local file is given by its content-addressed name instead."""
    assert request.template is not None
    spec = template_manifest(request.template).parameters
    offered = {k: v for k, v in pipeline_images(request).items() if k in spec}
    params, ignored = bind_parameters(
        request.template, {**offered, **request.parameters, "seed": request.seed}
    )
    uploads: dict[str, Path] = {}

    def named(value: Any) -> Any:
        if isinstance(value, str) and value and Path(value).is_file():
            name = content_name(Path(value))
            uploads[name] = Path(value)
            return name
        return value

    for key, value in params.items():
        kind = spec[key].type
        if kind == "image":
            params[key] = named(value)
        elif kind == "controlnet" and isinstance(value, dict) and "image" in value:
            params[key] = {**value, "image": named(value["image"])}
    return params, ignored, uploads


def stored_uploads(request: RenderRequest) -> dict[str, Path]:
    """The images a stored workflow reads, from the files they were uploaded from: each must
    still hold the same bytes (its name is their hash), else the reproduction cannot be."""
    found: dict[str, Path] = {}
    for name, source in sorted(request.uploads.items()):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"{request.label}: image {name} was uploaded from {source}, which is gone: "
                "it cannot be uploaded again for the reproduction"
            )
        if content_name(path) != name:
            raise ValueError(
                f"{request.label}: image {name} was uploaded from {source}, which has changed "
                f"since (now {content_name(path)}): the reproduction would not be exact"
            )
        found[name] = path
    return found


async def upload_images(
    server_names: list[str], uploads: dict[str, Path], *, ask_again: bool = False
) -> dict[str, set[str]]:
    """Every image onto every server of the run (once per server: see `upload_image`;
    `ask_again`: even where this process uploaded it before);
    returns what each server (base URL) now holds. A server that cannot take them now is
    left out; the render then cannot go there (its validation names the missing file)."""
    held: dict[str, set[str]] = {}
    if not uploads:
        return held
    for server in (await server_pool(server_names)).servers:
        client = server.get_client()
        try:
            for name, path in uploads.items():
                await client.upload_image(path, name, ask_again=ask_again)
        except ComfyUITransientError as exc:
            run_logger().warning("images not uploaded to %s: %s", server.base_url, exc)
            continue
        held[server.base_url] = set(uploads)
    return held


def _primary_first(outputs: list[RenderOutput], phase: Phase) -> list[RenderOutput]:
    """The output the phase is judged on goes first: the clip for animation, an image else."""
    animated = [o for o in outputs if (o.frames or 1) > 1]
    if phase is Phase.ANIMATION and animated:
        return animated[:1] + [o for o in outputs if o is not animated[0]]
    stills = [o for o in outputs if (o.frames or 1) == 1]
    return stills[:1] + [o for o in outputs if not stills or o is not stills[0]]


_SAID: set[tuple[str, tuple[str, ...]]] = set()


class ComfyUIRenderer:
    """Renders on the ComfyUI servers the request names, through its template."""

    name = "comfyui"

    def workflow(self, request: RenderRequest) -> dict[str, Any]:
        if not request.template:
            raise ValueError(f"{request.label}: the comfyui renderer needs a template")
        params, ignored, _ = template_inputs(request)
        if ignored:
            # Said once per template and parameters in a process, not for every cut of it.
            said = (request.template, tuple(ignored))
            log = run_logger().debug if said in _SAID else run_logger().info
            _SAID.add(said)
            log(
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
        database = await in_session(database_id)
        prompt_id = prompt_id_for(request.job_id, request.attempt, database)
        if request.workflow is None:
            workflow = with_output_prefix(workflow, request, prompt_id)
            uploads = template_inputs(request)[2]
        else:
            uploads = stored_uploads(request)
        graph = json.loads(canonical_json(workflow))
        # A reproduction asks each server again: it may have restarted with its input folder
        # wiped since this process uploaded there.
        uploaded = await upload_images(
            request.servers, uploads, ask_again=request.workflow is not None
        )
        pool = await capable_pool(request.servers, graph, request.template, uploaded)
        outcome = await render_on(
            pool,
            graph,
            prompt_id,
            Path(request.out_dir),
            label=request.name,
            new_prompt=new_prompt,
            finished=None if new_prompt else await finished_prompt(request.job_id, prompt_id),
            on_finished=functools.partial(record_prompt_finished, request.job_id),
            before_submit=functools.partial(
                ensure_not_cancelled, request.job_id, request.run_started_at
            ),
            # A retry of this task run goes on with the attempt's deadline, not a new one.
            attempt_key=task_run.get_id(),
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
                **_graph_params(graph, request.template),
                "uploads": [
                    {"name": name, "source": str(path)} for name, path in sorted(uploads.items())
                ],
            },
            times=RenderTimes(
                queue_wait_s=outcome.timings.queue_wait_s,
                execution_s=outcome.timings.execution_s,
                download_s=outcome.timings.download_s,
                outage_s=outcome.timings.outage_s,
            ),
        )


def output_stem(request: RenderRequest) -> str:
    """What a render's files are called in the server's output folder, before the prompt's
    tag: `anime/<project>/<subject>-<phase>-a<attempt>` (a cut's own `filename_prefix`
    override instead, as given)."""
    given = request.parameters.get("filename_prefix")
    if isinstance(given, str) and given.strip():
        return given.strip()
    subject = f"{request.label}-{request.phase.value}-a{request.attempt:02d}"
    parts = ["anime", request.project, subject] if request.project else ["anime", subject]
    return "/".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p).strip("-.") or "render" for p in parts)


def with_output_prefix(
    workflow: dict[str, Any], request: RenderRequest, prompt_id: str
) -> dict[str, Any]:
    """The template's graph with its save nodes writing under a prefix that names the prompt
    (`blocks.comfyui.output_prefix`): readable in the output folder, each node keeping its
    own suffix (`_frame`, `_clip`), and unique per prompt id, so that a prompt that finished
    unseen (its server restarted before its history was read) is found there again, not
    rendered again. A template without a `filename_prefix` parameter keeps its names (and
    its prompts cannot be found that way)."""
    assert request.template is not None
    if "filename_prefix" not in template_manifest(request.template).parameters:
        return workflow
    prefix = output_prefix(output_stem(request), prompt_id)
    return rebind_parameter(request.template, workflow, "filename_prefix", prefix)


def _graph_params(graph: dict[str, Any], template: str | None) -> dict[str, Any]:
    """What the job stores, read from the graph as submitted: its prompts are the graph's own
    (a graph without a prompt stores none, whatever the cut's brief said), and the template
    by name and manifest version."""
    found = extract_params(graph)
    params: dict[str, Any] = {
        **found.model_dump(mode="json"),
        "positive_prompt": found.positive or "",
        "negative_prompt": found.negative or "",
    }
    if template:
        params["template"] = template
        params["template_version"] = str(template_manifest(template).version)
    return params


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
