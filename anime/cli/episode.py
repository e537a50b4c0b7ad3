"""`anime episode export`: the episode as one MP4 (and a contact sheet) from what is stored."""

from __future__ import annotations

import enum
import shutil
from pathlib import Path

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema

episode_app = typer.Typer(help="Episodes: the reel of what is rendered.", no_args_is_help=True)
app.add_typer(episode_app, name="episode")


class Only(enum.StrEnum):
    APPROVED = "approved"


@episode_app.command("export")
@clear_errors
def export(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="also copy the MP4 here (default: print the stored path)"
    ),
    fps: int | None = typer.Option(
        None, "--fps", min=1, max=120, help="reel frame rate (default: the episode's)"
    ),
    only: Only | None = typer.Option(
        None, "--only", help="approved: unapproved attempts become slates"
    ),
) -> None:
    """Build the episode's reel from stored outputs, rendering nothing; the same renders give
    the same bytes."""
    from db.engine import session_scope
    from db.queries import get_episode
    from tasks.reel.encoding import ReelCodecError
    from tasks.reel.export import export_reel

    require_current_schema()
    with session_scope() as s:
        episode_id = get_episode(s, project, episode).id
    try:
        summary = export_reel(episode_id, fps=fps, only_approved=only is Only.APPROVED)
    except (ReelCodecError, ValueError) as exc:
        raise UserError(str(exc)) from None
    typer.echo(summary.describe())
    for cut in summary.cuts:
        job = f"job {cut['job_id']}" if cut["job_id"] else "no job"
        why = cut["reason"] or cut["status"]
        typer.echo(
            f"  {cut['label']} {cut['source']:<9} {job:<10} frames {cut['start_frame']}"
            f"+{cut['frames']}  {why}"
        )
    if output is not None:
        if output.is_dir():
            output = output / Path(summary.path).name
        try:
            shutil.copyfile(summary.path, output)
        except OSError as exc:
            raise UserError(f"--output {output}: cannot write it ({exc.strerror})") from None
        typer.echo(f"wrote {output}")
