"""`anime render`: run an episode's flow from this terminal (Prefect records it either way)."""

from __future__ import annotations

import asyncio
import os

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema
from db.vocabulary import Phase


def prefect_on_postgres() -> str | None:
    """Without a Prefect server configured, runs here go through Prefect's ephemeral server;
    give it PostgreSQL (the database `anime server` uses) rather than its default SQLite,
    which locks under concurrent cut subflows. Returns where, for people."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        return None
    from deployments.server import prefect_database

    database = prefect_database()
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = database.url
    return database.where


async def settle() -> None:
    """Give Prefect's temporary server a moment to record the last task-run events: stopped
    mid-flush it prints a cancellation traceback that looks like a failure (it is not)."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        await asyncio.sleep(2.0)


def run_episode(
    project: str,
    episode: int,
    phase: Phase,
    until: Phase,
    renderer: str,
    servers: list[str],
    budget: int,
    template: str | None = None,
) -> None:
    # Checked before Prefect and the flows are imported (seconds): a mistake is said at once.
    check_template(template)
    check_run(project, episode, phase, until, renderer, servers, budget)
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    from flows.episode import render_episode

    local = prefect_on_postgres()

    async def run():
        await check_servers(servers)
        state = await render_episode(
            project,
            episode,
            phase=phase,
            until=until,
            renderer=renderer,
            comfyui_servers=servers,
            attempt_budget=budget,
            template=template,
            return_state=True,
        )
        await settle()
        return state

    state = asyncio.run(run())
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        raise typer.Exit(_fail(f"the run {state.name}: {report}"))
    typer.echo("\n" + report.summary())
    if state.is_cancelled():
        raise typer.Exit(_fail(f"the run was cancelled: {state.message}"))
    for result in report.phases:
        typer.echo(f"\n{result.phase.value} gate:\n{result.explanation}")
    run_id = state.state_details.flow_run_id
    ui = PREFECT_UI_URL.value() if PREFECT_API_URL.value() else None
    if ui:
        typer.echo(f"\nIn the Prefect UI: {ui}/runs/flow-run/{run_id}")
    else:
        typer.echo(
            f"\nflow run {run_id}, recorded in Prefect's database ({local or 'local'}). To see "
            "it in the Prefect UI: `.venv/bin/anime server`, then open "
            f"http://127.0.0.1:4200/runs/flow-run/{run_id}"
        )


PHASE_ORDER = list(Phase)


def check_renderer(renderer: str, servers: list[str], budget: int) -> None:
    """The renderer named exists, ComfyUI has a server to go to and the budget allows an
    attempt: said before any run. (Not click's min=: `--deployment` reports every bad
    parameter of its run together.)"""
    from tasks.rendering.renderers import RENDERERS

    if budget < 1:
        raise typer.BadParameter(f"{budget} allows no attempt: at least 1", param_hint="'--budget'")

    known = ["auto", *RENDERERS]
    if renderer not in known:
        raise typer.BadParameter(
            f"unknown renderer {renderer!r} (renderers: {', '.join(known)})",
            param_hint="'--renderer'",
        )
    if renderer == "comfyui" and not servers:
        raise typer.BadParameter(
            "'comfyui' needs a server: --server NAME or --server http://HOST:8188 "
            "(saved servers: `anime comfyui list`)",
            param_hint="'--renderer'",
        )


def check_run(
    project: str,
    episode: int,
    phase: Phase,
    until: Phase,
    renderer: str,
    servers: list[str],
    budget: int,
) -> None:
    """Everything a render can be refused for without a server, checked before Prefect
    starts (half a minute on a busy machine) rather than after."""
    from db.engine import session_scope
    from db.queries import get_episode

    if PHASE_ORDER.index(until) < PHASE_ORDER.index(phase):
        raise typer.BadParameter(
            f"--until {until.value} comes before --phase {phase.value}: nothing would render "
            f"(phases in order: {', '.join(p.value for p in PHASE_ORDER)})",
            param_hint="'--until'",
        )
    check_renderer(renderer, servers, budget)
    with session_scope() as session:
        get_episode(session, project, episode)  # LookupError naming the known ones


def check_template(template: str | None) -> None:
    """An unknown --template is a usage error before any run exists."""
    from workflows import UnknownTemplateError, load_template

    if template is not None:
        try:
            load_template(template)
        except UnknownTemplateError as exc:
            raise UserError(f"--template: {exc}") from None


async def check_servers(servers: list[str]) -> None:
    """Every --server (block name or URL) resolves before any run exists."""
    from blocks.comfyui import find_server

    for name in servers:
        await find_server(name)  # ComfyUIServerNotFound names it and how to add it


def _fail(message: str) -> int:
    typer.echo(f"error: {message}", err=True)
    return 1


@app.command("render")
@clear_errors
def render(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    phase: Phase = typer.Option(Phase.GENERATION, help="phase to start from"),
    until: Phase = typer.Option(Phase.QUALITY, help="last phase to run"),
    renderer: str = typer.Option("auto", help="auto | animatic | comfyui"),
    server: list[str] = typer.Option(
        [], "--server", help="ComfyUI server: block name or URL (repeat)"
    ),
    budget: int = typer.Option(3, help="attempts per cut before it is flagged for review"),
    template: str | None = typer.Option(
        None, help="render every cut with this ComfyUI template, whatever the cuts pin"
    ),
) -> None:
    """Render an episode here: each phase, then its gate; stops where a gate closes."""
    require_current_schema()
    run_episode(project, episode, phase, until, renderer, server, budget, template)


@app.command("sheet")
@clear_errors
def sheet(
    project: str = typer.Argument(..., help="project slug"),
    character: str = typer.Argument(..., help="character slug"),
    renderer: str = typer.Option("auto", help="auto | animatic | comfyui"),
    server: list[str] = typer.Option(
        [], "--server", help="ComfyUI server: block name or URL (repeat)"
    ),
    budget: int = typer.Option(3, help="attempts before the sheet is flagged for review"),
    look: str | None = typer.Option(
        None, "--look", help="the look to render; approved views become its references"
    ),
) -> None:
    """Render a character sheet here; approved views become the character's references."""
    from flows.character_sheet import character_sheet

    require_current_schema()
    check_renderer(renderer, server, budget)
    prefect_on_postgres()
    state = asyncio.run(
        character_sheet(
            project,
            character,
            renderer=renderer,
            comfyui_servers=server,
            attempt_budget=budget,
            look=look,
            return_state=True,
        )
    )
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        raise typer.Exit(_fail(f"the run {state.name}: {report}"))
    typer.echo(
        f"{project}/{character}: sheet {report.status} after {report.attempts} attempt(s), "
        f"{report.references_added} reference(s) added\n{report.explanation}"
    )
