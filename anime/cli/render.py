"""`anime render`: run an episode's flow from this terminal (Prefect records it either way)."""

from __future__ import annotations

import asyncio

import typer

from anime.cli.app import app, clear_errors
from anime.cli.db import require_current_schema
from db.models import Phase


def run_episode(
    project: str,
    episode: int,
    phase: Phase,
    until: Phase,
    renderer: str,
    servers: list[str],
    budget: int,
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    from flows.episode import render_episode

    state = asyncio.run(
        render_episode(
            project,
            episode,
            phase=phase,
            until=until,
            renderer=renderer,
            comfyui_servers=servers,
            attempt_budget=budget,
            return_state=True,
        )
    )
    report = state.result(raise_on_failure=False)
    if isinstance(report, BaseException):
        raise typer.Exit(_fail(f"the run {state.name}: {report}"))
    typer.echo("\n" + report.summary())
    for result in report.phases:
        typer.echo(f"\n{result.phase.value} gate:\n{result.explanation}")
    run_id = state.state_details.flow_run_id
    ui = PREFECT_UI_URL.value() if PREFECT_API_URL.value() else None
    if ui:
        typer.echo(f"\nIn the Prefect UI: {ui}/runs/flow-run/{run_id}")
    else:
        typer.echo(
            f"\nflow run {run_id}. To see it in the Prefect UI: `.venv/bin/prefect server start`, "
            "then open http://127.0.0.1:4200/runs (this run is in Prefect's local database)."
        )


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
    server: list[str] = typer.Option([], "--server", help="ComfyUI server block name (repeat)"),
    budget: int = typer.Option(3, help="attempts per cut before it is flagged for review"),
) -> None:
    """Render an episode here: each phase, then its gate; stops where a gate closes."""
    require_current_schema()
    run_episode(project, episode, phase, until, renderer, server, budget)


@app.command("sheet")
@clear_errors
def sheet(
    project: str = typer.Argument(..., help="project slug"),
    character: str = typer.Argument(..., help="character slug"),
    renderer: str = typer.Option("auto", help="auto | animatic | comfyui"),
    server: list[str] = typer.Option([], "--server", help="ComfyUI server block name (repeat)"),
    budget: int = typer.Option(3, help="attempts before the sheet is flagged for review"),
) -> None:
    """Render a character sheet here; approved views become the character's references."""
    from flows.character_sheet import character_sheet

    require_current_schema()
    state = asyncio.run(
        character_sheet(
            project,
            character,
            renderer=renderer,
            comfyui_servers=server,
            attempt_budget=budget,
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
