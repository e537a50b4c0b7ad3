"""`anime models status | fetch | check`: the scoring models' files, where they go, whether
they load, and one tiny clip through every metric."""

from __future__ import annotations

from pathlib import Path

import typer

from anime.cli.app import UserError, app, clear_errors

models_app = typer.Typer(help="Scoring model files: status, fetch, check.", no_args_is_help=True)
app.add_typer(models_app, name="models")

BlockOption = typer.Option(
    None, "--block", help="a saved ScoringModels block (default: the block's defaults)"
)


def _block(name: str | None):
    from blocks.scoring import ScoringModels

    if name is None:
        return ScoringModels()
    try:
        return ScoringModels.load(name)
    except ValueError as exc:
        raise UserError(f"no ScoringModels block {name!r} ({exc})") from None


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@models_app.command("status")
@clear_errors
def status(
    names: list[str] = typer.Argument(None, help="models to show (default: all)"),
    block: str | None = BlockOption,
    load: bool = typer.Option(True, "--load/--no-load", help="try loading each present model"),
) -> None:
    """Per model: the metric it serves, where it is expected, present, size, sha256, loads."""
    from tasks.scoring import kit

    models = _block(block)
    try:
        entries = kit.select(models, names) if names else kit.kit(models)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for entry in entries:
        used = "" if entry.used else " (not used by this block)"
        typer.echo(f"{entry.name}{used}: {entry.metrics}")
        if entry.note:
            typer.echo(f"  where: {entry.note}")
        for item in entry.files:
            if item.present():
                digest = "" if item.target.is_dir() else f", sha256 {kit.sha256_of(item.target)}"
                typer.echo(f"  {item.target}: present, {_mb(kit.size_of(item.target))}{digest}")
            else:
                typer.echo(f"  {item.target}: MISSING (from {item.url})")
        if load and entry.present:
            typer.echo(f"  loads: {kit.loads(entry)}")


def _offline_instructions(entries, why: str) -> None:
    typer.echo(f"Cannot download ({why}). Copy these files by hand:")
    for entry in entries:
        for item in entry.files:
            if item.present():
                continue
            what = "unzip into" if item.unzip else "put at"
            typer.echo(f"  {entry.name}: {item.url}\n    {what} {item.target}")
    typer.echo("or run `anime models fetch --from FOLDER` with the files in FOLDER.")


@models_app.command("fetch")
@clear_errors
def fetch(
    names: list[str] = typer.Argument(None, help="models to fetch (default: those the block uses)"),
    block: str | None = BlockOption,
    source: Path | None = typer.Option(
        None, "--from", help="copy the files from this folder (by file name) instead of downloading"
    ),
) -> None:
    """Download the missing models from their publishers (sha256 checked where published) to
    where the ScoringModels block looks; offline, print what to copy where."""
    from tasks.scoring import kit
    from tasks.scoring.loading.downloads import download_blocker

    models = _block(block)
    try:
        entries = kit.select(models, names)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    missing = [e for e in entries if not e.present]
    for entry in entries:
        if entry.present:
            typer.echo(f"{entry.name}: already in place")
    if not missing:
        return
    if source is not None:
        failed = []
        for entry in missing:
            for item in entry.files:
                if item.present():
                    continue
                candidate = source / item.name
                if not candidate.is_file():
                    failed.append(f"{entry.name}: no {item.name} in {source}")
                    continue
                try:
                    kit.place(candidate, item)
                except (ValueError, OSError, kit.zipfile.BadZipFile) as exc:
                    failed.append(f"{entry.name}: {exc}")
                    continue
                typer.echo(f"{entry.name}: {candidate} -> {item.target}")
        if failed:
            raise UserError("; ".join(failed))
        return
    blocked = {}
    for entry in missing:
        why = next((b for f in entry.files if (b := download_blocker(models, f.url))), None)
        if why:
            blocked[entry.name] = why
    for entry in missing:
        if entry.name in blocked:
            continue
        for item in entry.files:
            if item.present():
                continue
            typer.echo(f"{entry.name}: {item.url} -> {item.target}")
            try:
                kit.download(item)
            except Exception as exc:  # network, disk or checksum: name the file
                raise UserError(f"{entry.name}: download of {item.url} failed: {exc}") from None
        typer.echo(f"{entry.name}: loads: {kit.loads(entry)}")
    if blocked:
        _offline_instructions(
            [e for e in missing if e.name in blocked], "; ".join(sorted(set(blocked.values())))
        )
        raise typer.Exit(1)


@models_app.command("check")
@clear_errors
def check(block: str | None = BlockOption) -> None:
    """One tiny synthetic clip through every metric the block serves; exit 1 if any cannot
    judge for a missing or broken model."""
    from tasks.scoring.check import run_check

    lines, ok = run_check(_block(block))
    for line in lines:
        typer.echo(line)
    if not ok:
        raise typer.Exit(1)


def missing_models_hint() -> str | None:
    """What to run when the default block's models are not all in place (for `anime demo`)."""
    from tasks.scoring import kit

    missing = [e.name for e in kit.select(_block(None), None) if not e.present]
    if not missing:
        return None
    return (
        f"Scoring models missing: {', '.join(missing)} (their metrics could not judge). Run "
        "`anime models fetch` (online it downloads them; offline it prints which file goes "
        "where), then `anime models check`; `anime models status` shows each file."
    )
