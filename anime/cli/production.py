"""`anime import | export | status | demo`: production files in and out, and where things stand."""

from __future__ import annotations

from pathlib import Path

import typer

from anime.cli.app import app, clear_errors
from anime.cli.db import require_current_schema
from anime.cli.reference_check import (
    CheckReferencesOption,
    ScoringBlockOption,
    ThresholdsBlockOption,
    reference_blocks,
    report_reference_check,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "moonlit-courier" / "production.yaml"


@app.command("import")
@clear_errors
def import_(
    file: Path = typer.Argument(..., help="production YAML file"),
    prune: bool = typer.Option(
        False, "--prune", help="remove characters, episodes, scenes and cuts the file no longer has"
    ),
    yes: bool = typer.Option(
        False, "--yes", help="with --prune: remove render history without asking"
    ),
    check_references: bool = CheckReferencesOption,
    thresholds_block: str | None = ThresholdsBlockOption,
    scoring_block: str | None = ScoringBlockOption,
) -> None:
    """Import or update a production (idempotent; all or nothing). Then warns about its own
    reference images its gates would reject, when the scoring models are installed (only
    images not scored before are scored; without the models it prints nothing more)."""
    from db.briefs import production_references
    from db.engine import session_scope
    from db.face_calibration import project_id_of
    from db.production_file import ProductionFileError, load_production
    from db.production_io import import_production
    from db.prune import PruneMeasure

    production = load_production(file)
    require_current_schema()
    blocks = reference_blocks(thresholds_block, scoring_block) if check_references else None
    with session_scope() as session:
        measure = PruneMeasure(session, production.project.slug)
        try:
            with measure:
                report = import_production(session, production, prune=prune)
        except ProductionFileError as exc:
            # Problems only the database can show (a story named, a look's story point) are
            # raised deep in the import: they name this file too.
            raise ProductionFileError(str(file), exc.problems) from None
        impact = measure.impact
        if impact.removes_history:
            typer.echo(f"{report.summary()}\n{impact.describe()}", err=True)
            if not yes and not typer.confirm("Remove this render history?"):
                session.rollback()
                typer.echo("nothing changed", err=True)
                raise typer.Exit(1)
        calibrated = _recalibrate(session, report) if report.changed else []
        project_id = project_id_of(session, report.project)
        references = production_references(session, project_id) if blocks else []
    typer.echo(report.summary())
    if prune:
        typer.echo(impact.describe())
        _remove_outputs(impact.files)
    if calibrated:
        typer.echo(f"face thresholds recalibrated: {', '.join(calibrated)}")
    if blocks:  # on every import: quiet where the models are not installed
        report_reference_check(references, blocks, note_when_not_installed=False)


def _remove_outputs(files: list[str]) -> None:
    """Output files of pruned artifacts go too, when they are the studio's own (under its
    artifacts folder); any other is named, not deleted."""
    from tasks.storage import artifacts_root

    root = artifacts_root().resolve()
    left: list[str] = []
    removed = 0
    for name in files:
        path = Path(name)
        if path.resolve().is_relative_to(root) and path.is_file():
            path.unlink()
            removed += 1
        elif path.exists():
            left.append(name)
    if removed:
        typer.echo(f"removed {removed} output file(s) under {root}")
    for name in left:
        typer.echo(f"left on disk (outside {root}): {name}")


def _recalibrate(session, report) -> list[str]:
    """References may have changed: calibrate the cast again from the embeddings stored."""
    from db.face_calibration import project_id_of
    from tasks.face_calibration import calibrate_project

    stored = calibrate_project(session, project_id_of(session, report.project))
    return [f"{c.subject} [{c.model_name}]" for c in stored]


@app.command("export")
@clear_errors
def export(
    project: str = typer.Argument(..., help="project slug"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="file to write (default stdout)"
    ),
) -> None:
    """Write a project as a production file that imports back to the same rows."""
    from db.engine import session_scope
    from db.production_file import dump_production
    from db.production_io import export_production

    require_current_schema()
    with session_scope() as session:
        # Images inside the folder written to are named relative to it, the rest absolutely.
        to_dir = output.resolve().parent.as_posix() if output else None
        production = export_production(session, project, to_dir)
        text = dump_production(production)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    _warn_outside(production, to_dir)


def _warn_outside(production, to_dir: str | None) -> None:
    """Images named absolutely import again only from under a media root: say so now."""
    from db.media_paths import contained
    from db.production_file import map_image_paths

    outside: list[str] = []

    def note(path: str, _where: str) -> str:
        if path.startswith("/") and contained(path, to_dir) is None:
            outside.append(path)
        return path

    map_image_paths(production, note)
    if outside:
        typer.echo(
            f"note: {len(outside)} image path(s) lie outside the export's folder; importing it "
            "needs ANIME_MEDIA_ROOT to cover them (e.g. the production's folder)",
            err=True,
        )


@app.command("status")
@clear_errors
def status(
    project: str | None = typer.Argument(None, help="project slug (default: all)"),
    detail: bool = typer.Option(
        False, "--detail", help="yield per episode, phase, scene and character"
    ),
) -> None:
    """Projects, their episodes, jobs and phase gates."""
    from db.engine import describe_database, session_scope
    from db.queries import all_projects, get_episode, get_project, project_status
    from db.yields import episode_yield

    require_current_schema()
    with session_scope() as session:
        projects = [get_project(session, project)] if project else all_projects(session)
        statuses = [project_status(session, p) for p in projects]
        yields = {
            (s.slug, e.number): episode_yield(session, get_episode(session, s.slug, e.number).id)
            for s in statuses
            for e in s.episodes
        } if detail else {}  # fmt: skip
    typer.echo(f"database: {describe_database()}")
    if not statuses:
        typer.echo("no projects yet: `anime import FILE`")
    for s in statuses:
        typer.echo(
            f"\n{s.name} [{s.slug}]  story bible v{s.story_bible_version}  "
            f"{s.characters} characters, {s.references} reference images"
        )
        for e in s.episodes:
            typer.echo(
                f"  episode {e.number}: {e.title} - {e.scenes} scenes, {e.cuts} cuts, "
                f"{e.frames} frames"
            )
            jobs = ", ".join(f"{n} {st}" for st, n in sorted(e.jobs_by_status.items()))
            typer.echo(f"    jobs: {jobs or 'none yet'}")
            for gate in e.gates:
                typer.echo(f"    gate {gate}")
            for line in e.looks:  # the look each cut was rendered in, else the one planned
                typer.echo(f"    look {line}")
            if e.story is not None:
                typer.echo(f"    {e.story.describe()}")
            if (found := yields.get((s.slug, e.number))) is not None:
                typer.echo(f"    yield: {found.episode.describe()}")
                groups = [
                    *((f"phase {p}", f) for p, f in found.by_phase.items()),
                    *((f"scene {n}", f) for n, f in sorted(found.by_scene.items())),
                    *((f"character {c}", f) for c, f in sorted(found.by_character.items())),
                ]
                for name, figures in groups:
                    typer.echo(f"      {name}: {figures.describe()}")
        if s.reproductions_by_status:
            done = s.reproductions_by_status
            parts = [f"{done.get('passed', 0)} identical", f"{done.get('failed', 0)} differ"]
            others = sum(n for st, n in done.items() if st not in ("passed", "failed"))
            parts += [f"{others} not finished or in error"] if others else []
            typer.echo(f"  reproductions: {', '.join(parts)}")


@app.command("demo")
@clear_errors
def demo(file: Path = typer.Option(EXAMPLE, help="production file to use")) -> None:
    """The main job: migrate, import the example production, render its first episode."""
    from anime.cli.render import run_episode
    from db import migrate
    from db.production_file import load_production
    from db.vocabulary import Phase

    migrate.upgrade()
    import_(
        file,
        prune=False,
        yes=False,
        check_references=True,
        thresholds_block=None,
        scoring_block=None,
    )
    production = load_production(file)
    episode = production.episodes[0].number
    typer.echo(f"\nrendering {production.project.slug} episode {episode} ...")
    run_episode(production.project.slug, episode, Phase.GENERATION, Phase.QUALITY, "auto", [], 3)
    status(production.project.slug, detail=False)
    from anime.cli.models import missing_models_hint

    if hint := missing_models_hint():
        typer.echo(f"\n{hint}")
