"""Operations: `anime server | serve | api | deploy | reproduce | doctor | cancel`,
and `anime render --deployment`.

Runs started here go through Prefect deployments, so they land on whichever machine serves
them (this one with `anime serve`, a GPU host's worker with `anime deploy`). Parameters are
checked before a run is created: a wrong one is an error naming it, and no run exists.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
from typing import Any

import typer
from pydantic import ValidationError

from anime.cli import render as _render  # noqa: F401  (registered first: _extend_render wraps it)
from anime.cli.app import UserError, app, clear_errors

# -- shared ------------------------------------------------------------------------------------


def _schedules(nightly_cron: str | None, timezone: str | None):
    from deployments.catalogue import ScheduleOverrides

    try:
        return ScheduleOverrides.from_env(nightly_cron, timezone)
    except ValidationError as exc:
        raise UserError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """`-p name=value`: the value is JSON when it parses as JSON (3, true, ["a"]), else text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param {pair!r}: write it as NAME=VALUE")
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def _run(main) -> None:
    """Run `main(stop)` until SIGINT / SIGTERM; known start-up failures become one message."""
    from deployments.serve import ServeError, run_until_signalled
    from deployments.server import ServerError

    try:
        run_until_signalled(main)
    except (ServeError, ServerError) as exc:
        raise UserError(str(exc)) from None


LOCAL_PROBE_S = 1.0  # how long the local `anime server` gets to answer before we give up
LOCAL_PREFECT_API = "http://127.0.0.1:4200/api"  # `anime server`'s default address


def _configured_prefect_api() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, read without
    importing Prefect (seconds on a busy machine) unless this process has it loaded already."""
    import sys
    import tomllib
    from pathlib import Path

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        data = tomllib.loads(profiles.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or ""
    return data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None


def prefect_api_for_runs() -> str | None:
    """The Prefect API runs are created on: None when PREFECT_API_URL says (environment or
    profile), else the `anime server` of this machine if it answers within a second. Without
    either, Prefect's client would start a throw-away server of its own that knows no
    deployment (and take half a minute to say so): refused at once instead."""
    import httpx

    if _configured_prefect_api():
        return None
    try:
        answer = httpx.get(f"{LOCAL_PREFECT_API}/health", timeout=LOCAL_PROBE_S)
        if answer.status_code == 200:
            return LOCAL_PREFECT_API
    except httpx.HTTPError:
        pass
    raise UserError(
        f"PREFECT_API_URL is not set and no `anime server` answers at {LOCAL_PREFECT_API}: "
        "set PREFECT_API_URL to the studio's Prefect server (e.g. export "
        f"PREFECT_API_URL={LOCAL_PREFECT_API}), or start `anime server` on this machine"
    )


def start_run(
    deployment: str, parameters: dict[str, Any], wait: bool, timeout: float
) -> str | None:
    """Create a run of `deployment` (parameters checked first) and report it; with `wait`,
    follow it to its end and exit 1 unless it completed. Returns the finished run's id."""
    local = prefect_api_for_runs()
    if local is None:
        return _start_run(deployment, parameters, wait, timeout)
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    typer.echo(f"PREFECT_API_URL is not set: using the `anime server` at {local}")
    ui = local.removesuffix("/api")
    with temporary_settings({PREFECT_API_URL: local, PREFECT_UI_URL: ui}):
        return _start_run(deployment, parameters, wait, timeout)


def _start_run(
    deployment: str, parameters: dict[str, Any], wait: bool, timeout: float
) -> str | None:
    from deployments.params import ParameterError
    from deployments.trigger import trigger, wait_for_run

    async def go():
        run = await trigger(deployment, parameters)
        typer.echo(f"flow run {run.flow_run_name} ({run.flow_run_id}) of {run.deployment}")
        if run.ui_url:
            typer.echo(f"  {run.ui_url}")
        if not wait:
            typer.echo("  it runs where the deployment is served (`anime serve`, a worker)")
            return None
        return await wait_for_run(run.flow_run_id, timeout)

    try:
        finished = asyncio.run(go())
    except ParameterError as exc:
        raise UserError(str(exc)) from None
    except TimeoutError:
        raise UserError(f"the run did not finish within {timeout:g} s (it goes on)") from None
    if finished is None:
        return None
    state = finished.state
    typer.echo(f"  {state.name}: {state.message or ''}".rstrip(": "))
    if not state.is_completed():
        raise typer.Exit(1)
    return str(finished.id)


# -- anime serve / server / api / deploy -------------------------------------------------------

CRON_HELP = "cron of the nightly render (default 0 2 * * *, or ANIME_NIGHTLY_CRON)"
TZ_HELP = "timezone of the nightly cron, e.g. Asia/Tokyo (default UTC, or ANIME_NIGHTLY_TIMEZONE)"


@app.command("serve")
@clear_errors
def serve(
    nightly_cron: str | None = typer.Option(None, help=CRON_HELP),
    timezone: str | None = typer.Option(None, help=TZ_HELP),
    limit: int | None = typer.Option(None, min=1, help="most runs at once on this machine"),
    pause_on_shutdown: bool = typer.Option(
        False, help="pause the deployments' schedules when this stops (Prefect's default)"
    ),
) -> None:
    """Serve every deployment from this machine (schedules included) until Ctrl-C."""
    from prefect.settings import PREFECT_API_URL

    from deployments.catalogue import deployment_specs
    from deployments.serve import serve_until, studio_runner

    schedules = _schedules(nightly_cron, timezone)
    if not PREFECT_API_URL.value():
        raise UserError(
            "no Prefect server to serve to: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
            "or start everything with `anime server`"
        )

    async def main(stop):
        runner = await studio_runner(schedules, limit=limit, pause_on_shutdown=pause_on_shutdown)
        typer.echo(f"serving {len(deployment_specs(schedules))} deployments; Ctrl-C stops")
        await serve_until(stop, runner)

    _run(main)


def _domain_api():
    """The domain API app, built when `anime server` starts it (after Prefect answers)."""
    from anime.api.app import create_app

    return create_app()


@app.command("server")
@clear_errors
def server(
    host: str = typer.Option("127.0.0.1", help="Prefect server and UI address"),
    port: int = typer.Option(4200, help="Prefect server and UI port"),
    api_host: str = typer.Option("127.0.0.1", help="domain API address"),
    api_port: int = typer.Option(4300, help="domain API port"),
    prefect_db: str | None = typer.Option(
        None,
        help="Prefect's database URL (postgresql+asyncpg://...); default: see README",
        envvar="PREFECT_API_DATABASE_CONNECTION_URL",
        show_envvar=False,
    ),
    prefect_database: str = typer.Option("prefect", help="name of Prefect's database"),
    serve: bool = typer.Option(True, help="also serve every deployment from this machine"),
    nightly_cron: str | None = typer.Option(None, help=CRON_HELP),
    timezone: str | None = typer.Option(None, help=TZ_HELP),
    limit: int | None = typer.Option(None, min=1, help="most runs at once on this machine"),
) -> None:
    """Prefect server + UI on PostgreSQL, all deployments served, the domain API.

    One command; Ctrl-C or SIGTERM stops it all, deployments left unpaused.
    """
    from deployments.server import ServerConfig, run_server

    config = ServerConfig(
        host=host,
        port=port,
        api_host=api_host,
        api_port=api_port,
        prefect_database_url=prefect_db,
        prefect_database_name=prefect_database,
        serve=serve,
        schedules=_schedules(nightly_cron, timezone),
        limit=limit,
    )
    _run(functools.partial(run_server, config, api_app=_domain_api))
    typer.echo("stopped")


@app.command("api")
@clear_errors
def api(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(4300, help="port to listen on"),
) -> None:
    """The domain API alone (against PREFECT_API_URL and the studio's database)."""
    import uvicorn

    from anime.api.app import create_app

    _exit_cleanly_on_sigterm()
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def _exit_cleanly_on_sigterm() -> None:
    """uvicorn shuts down on SIGTERM, then raises the signal again under the handler it found.
    Under the default one the process dies there, skipping atexit, where Prefect stops the
    temporary server it started without PREFECT_API_URL: that server was left an orphan. A
    handler that exits normally lets atexit run."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


@app.command("deploy")
@clear_errors
def deploy(
    pool: str | None = typer.Option(None, help="work pool (default: prefect.yaml's, anime-gpu)"),
    nightly_cron: str | None = typer.Option(None, help=CRON_HELP),
    timezone: str | None = typer.Option(None, help=TZ_HELP),
) -> None:
    """Register every deployment on the GPU work pool (created if missing).

    Each GPU host then runs a worker: `prefect worker start --pool anime-gpu`.
    """
    from deployments.catalogue import register_on_pool

    created = asyncio.run(register_on_pool(_schedules(nightly_cron, timezone), pool))
    for line in created:
        typer.echo(line)


@app.command("worker")
@clear_errors
def worker(
    pool: str = typer.Option("anime-gpu", help="work pool to take runs from"),
    limit: int | None = typer.Option(None, min=1, help="most runs at once on this host"),
    name: str | None = typer.Option(None, help="worker name (default: one per host)"),
) -> None:
    """Run this GPU host's worker on the work pool, for deployments from `anime deploy`.

    The ComfyUI servers' concurrency limits are created first, so slots hold across hosts.
    """
    import socket

    import anyio
    from prefect.settings import PREFECT_API_URL
    from prefect.workers.process import ProcessWorker

    from deployments.serve import ensure_comfyui_limits

    if not PREFECT_API_URL.value():
        raise UserError("set PREFECT_API_URL to the studio's Prefect server (…:4200/api)")

    async def main(stop):
        for limit_name, slots in (await ensure_comfyui_limits()).items():
            typer.echo(f"ComfyUI slots: {limit_name} = {slots}")
        process_worker = ProcessWorker(
            work_pool_name=pool, limit=limit, name=name or f"anime-{socket.gethostname()}"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(process_worker.start)
            while not stop.is_set():
                await anyio.sleep(0.2)
            tg.cancel_scope.cancel()

    _run(main)


# -- anime reproduce ---------------------------------------------------------------------------


@app.command("reproduce")
@clear_errors
def reproduce(
    job: int = typer.Argument(..., min=1, help="job id"),
    server: list[str] = typer.Option(
        [], "--server", help="ComfyUI server, block name or URL (default: the job's own)"
    ),
    wait: bool = typer.Option(False, "--wait", help="follow the run to its end"),
    timeout: float = typer.Option(600, help="seconds --wait waits"),
) -> None:
    """Render a job again from its stored workflow (the reproduce-job deployment), on the
    server that rendered it unless --server names others."""
    from anime.cli.db import require_current_schema
    from db import api_queries
    from db.engine import session_scope

    require_current_schema()
    try:
        with session_scope() as session:
            found = api_queries.reproducible_job(session, job)
    except api_queries.Conflict as exc:
        raise UserError(str(exc)) from None
    typer.echo(f"job {found.job_id} ({found.project}, {found.phase}, {found.renderer})")
    parameters: dict[str, Any] = {"job_id": job}
    if server:
        parameters["comfyui_servers"] = server
    finished = start_run("reproduce-job", parameters, wait, timeout)
    if finished is not None:
        with session_scope() as session:
            outcome = api_queries.reproduction_outcome(session, finished)
        # Completed says the run ended well, not whether the output was the same: say that.
        typer.echo(f"  {outcome or 'no reproduction job was recorded by this run'}")


# -- anime doctor ------------------------------------------------------------------------------


@app.command("doctor")
@clear_errors
def doctor() -> None:
    """After a crash: mark the jobs and Prefect flow runs a dead process of this machine left
    running as crashed (with the reason), and give back its ComfyUI slots. Idempotent; every
    episode run does the same when it starts."""
    from anime.cli.db import require_current_schema
    from tasks.recovery import recover_crashed

    require_current_schema()
    recovery = asyncio.run(recover_crashed())
    for job_id in recovery.crashed_jobs:
        typer.echo(f"job {job_id}: crashed (its process died); a re-run renders it again")
    for run_id in recovery.crashed_flow_runs:
        typer.echo(f"flow run {run_id}: marked Crashed")
    for limit in recovery.released_slots:
        typer.echo(f"slot of {limit}: given back")
    typer.echo(
        recovery.describe()
        if recovery.crashed_jobs or recovery.released_slots or recovery.crashed_flow_runs
        else "nothing left running by a dead process"
    )


# -- anime cancel ------------------------------------------------------------------------------


@app.command("cancel")
@clear_errors
def cancel(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., min=1, help="episode number"),
    scene: int | None = typer.Option(None, "--scene", min=1, help="only this scene"),
    cut: int | None = typer.Option(None, "--cut", min=1, help="only this cut (of --scene)"),
) -> None:
    """Cancel the episode's renders (one scene's, one cut's): the waiting and rendering jobs'
    prompts are interrupted or taken off the queue on every ComfyUI server, the jobs end
    `cancelled` and their slots are given back; cuts the running episode has not started are
    not submitted. A whole episode's cancel also ends its Prefect flow run (Cancelled)."""
    from anime.cli.db import require_current_schema
    from tasks.cancel import cancel_renders

    require_current_schema()
    try:
        cancelled = asyncio.run(cancel_renders(project, episode, scene=scene, cut=cut))
    except LookupError as exc:
        raise UserError(str(exc).strip("'\"")) from None
    for line in cancelled.lines():
        typer.echo(line)
    where = (
        f"{project} episode {episode}"
        + (f" scene {scene}" if scene else "")
        + (f" cut {cut}" if cut else "")
    )
    jobs = len(cancelled.jobs)
    typer.echo(f"{jobs} job(s) cancelled" if jobs else "no job was waiting or rendering")
    typer.echo(f"runs under way will not submit the cuts of {where}")


# -- anime render --deployment -------------------------------------------------------------------

# `anime render` options -> render-episode parameters.
RENDER_PARAMS = {"server": "comfyui_servers", "budget": "attempt_budget"}


def render_parameters(options: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    from deployments.params import DEPLOYMENT_PARAMS

    params: dict[str, Any] = {}
    for option, value in options.items():
        name = RENDER_PARAMS.get(option, option)
        if name not in DEPLOYMENT_PARAMS["render-episode"].model_fields or value in (None, [], ()):
            continue
        params[name] = getattr(value, "value", value)
    params.update(extra)
    return params


def _extend_render() -> None:
    """Give `anime render` (anime/cli/render.py) a `--deployment` path: the same options, sent
    as parameters of a deployment run instead of rendering in this terminal."""
    info = next((c for c in app.registered_commands if c.name == "render"), None)
    if info is None or info.callback is None:
        return
    original = info.callback
    signature = inspect.signature(original, eval_str=True)
    if "deployment" in signature.parameters:
        return
    extra = [
        inspect.Parameter(
            "deployment",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                "--deployment",
                help="start a run of this deployment (e.g. render-episode) instead of "
                "rendering here",
            ),
            annotation=str | None,
        ),
        inspect.Parameter(
            "param",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                [], "--param", "-p", help="more deployment parameters, NAME=VALUE (repeat)"
            ),
            annotation=list[str],
        ),
        inspect.Parameter(
            "wait",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(False, "--wait", help="with --deployment: follow the run"),
            annotation=bool,
        ),
    ]

    @functools.wraps(original)
    def render(**options: Any) -> Any:
        deployment = options.pop("deployment")
        extra_params = options.pop("param")
        wait = options.pop("wait")
        if deployment is None:
            if extra_params or wait:
                typer.echo("error: --param and --wait go with --deployment", err=True)
                raise typer.Exit(1)
            return original(**options)
        return _render_deployment(deployment, options, extra_params, wait)

    render.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    render.__annotations__ = {
        p.name: p.annotation for p in render.__signature__.parameters.values()
    }
    info.callback = render


@clear_errors
def _render_deployment(
    deployment: str, options: dict[str, Any], extra: list[str], wait: bool
) -> None:
    if deployment.split("/")[0] != "render-episode":
        raise UserError(f"--deployment {deployment!r}: `anime render` starts render-episode runs")
    params = _parse_params(extra)
    prefect_api_for_runs()  # before the parameter models (they import every flow: seconds)
    start_run(deployment, render_parameters(options, params), wait, 3600)


_extend_render()
