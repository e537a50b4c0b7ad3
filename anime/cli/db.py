"""`anime db ...`: schema migrations, backup and restore of whichever server is in use."""

from __future__ import annotations

from pathlib import Path

import typer

from anime.cli.app import UserError, app, clear_errors

db_app = typer.Typer(help="Database: migrations, backup, restore.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@clear_errors
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Migrate the schema up (to the newest by default)."""
    from db import migrate
    from db.engine import describe_database

    migrate.upgrade(revision)
    typer.echo(f"{describe_database()}: schema at {migrate.current_revision()}")


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
@clear_errors
def downgrade(
    revision: str = typer.Argument("-1", help="target revision, -1 for one step, base for none"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Migrate the schema down (one step by default); asks first, as data goes with it."""
    from db import migrate

    current = migrate.current_revision()
    if current is None:
        raise UserError("the schema is already at base (empty): nothing to downgrade")
    if revision == "base":
        rows = migrate.stored_rows()
        lost = ", ".join(f"{n} {table}" for table, n in rows.items()) or "no rows (tables empty)"
        warning = f"Downgrading to base drops every table of the studio, with {lost}."
    else:
        warning = (
            f"Downgrading from {current} to {revision} drops the tables and columns the "
            "migrations in between added, with their data."
        )
    typer.echo(warning, err=True)
    if not yes and not typer.confirm("Continue? (`anime db backup FILE` first keeps a copy)"):
        typer.echo("nothing changed", err=True)
        raise typer.Exit(1)
    migrate.downgrade(revision)
    typer.echo(f"schema at {migrate.current_revision() or 'base (empty)'}")


@db_app.command("current")
@clear_errors
def current() -> None:
    """Show the schema revision of the database in use and the newest one the code knows."""
    from db import migrate
    from db.engine import describe_database

    current = migrate.current_revision()
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `anime db upgrade`"
    typer.echo(
        f"{describe_database()}\ncurrent: {current or 'base (empty)'}\nhead: {head} ({state})"
    )


@db_app.command("backup")
@clear_errors
def backup(file: Path = typer.Argument(..., help="where to write the dump")) -> None:
    """Dump the whole database (pg_dump custom format)."""
    from db.backup import backup as run_backup

    path = run_backup(file)
    typer.echo(f"backup written to {path} ({path.stat().st_size} bytes)")


@db_app.command("restore")
@clear_errors
def restore(
    file: Path = typer.Argument(..., help="a dump made by `anime db backup`"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Replace the database's contents with a backup (one transaction: all or nothing)."""
    from db.backup import restore as run_restore

    if not file.is_file():
        raise UserError(f"backup file not found: {file}")
    if not yes and not typer.confirm(f"Replace the database's contents with {file}?"):
        raise typer.Exit(1)
    run_restore(file)
    typer.echo(f"restored from {file}")


def require_current_schema() -> None:
    """Commands that read or write production data refuse to run on an old schema."""
    from db import migrate

    current, head = migrate.current_revision(), migrate.head_revision()
    if current != head:
        raise UserError(
            f"the database schema is at {current or 'base (empty)'} but this code needs {head}: "
            "run `anime db upgrade`"
        )
