"""`anime calibrate PROJECT [CHARACTER]`: each character's face threshold from its references."""

from __future__ import annotations

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema


@app.command("calibrate")
@clear_errors
def calibrate(
    project: str = typer.Argument(..., help="project slug"),
    character: str | None = typer.Argument(None, help="character slug (default: the whole cast)"),
    model: str | None = typer.Option(
        None, "--model", help="face model name (default: every model with reference embeddings)"
    ),
    scoring_block: str | None = typer.Option(
        None, "--scoring-block", help="a saved ScoringModels block (default: its defaults)"
    ),
    thresholds_block: str | None = typer.Option(
        None, "--thresholds-block", help="a saved QualityThresholds block (default: its defaults)"
    ),
    check_references: bool = typer.Option(
        True,
        "--check-references/--no-check-references",
        help="also score the production's own reference images against its gates",
    ),
) -> None:
    """Store each character's face threshold: its own references (genuine pairs) against the
    other characters' references (impostors), per face model. Fewer than two references keep
    the default gate (0.70). Also warns about every reference image of the production its own
    gates would reject (a style reference below the aesthetic gate, for instance)."""
    from db.engine import session_scope
    from db.face_calibration import character_slugs, project_id_of
    from tasks.face_calibration import (
        calibrate_project,
        production_references,
        reference_gate_warnings,
    )

    require_current_schema()
    blocks = _blocks(thresholds_block, scoring_block) if check_references else None
    with session_scope() as session:
        project_id = project_id_of(session, project)
        slugs = character_slugs(session, project_id)
        if character is not None and character not in slugs:
            raise UserError(f"project {project!r} has no character {character!r} (it has {slugs})")
        stored = calibrate_project(session, project_id, character=character, model_name=model)
        references = production_references(session, project_id)
    # Scored after the transaction: loading CLIP takes seconds and needs no database.
    for line in reference_gate_warnings(references, *blocks) if blocks else []:
        typer.echo(line, err=True)
    if not stored:
        raise UserError(
            f"no reference face embeddings in {project!r}"
            + (f" from {model}" if model else "")
            + ": run an episode (it embeds the references) or approve a character sheet first"
        )
    for row in stored:
        value = "default kept" if row.threshold is None else f"{row.threshold:.4f}"
        typer.echo(
            f"{row.subject} [{row.model_name}]: {value} "
            f"({row.references} references, {row.impostors} impostors)"
        )
        typer.echo(f"  {row.explanation}")
        if row.own_rejected:
            typer.echo(
                f"  warning: this threshold fails {row.own_rejected} of {row.character}'s own "
                f"{row.references} references: check them, or set face_threshold by hand",
                err=True,
            )


def _blocks(thresholds_block: str | None, scoring_block: str | None):
    from blocks.quality import QualityThresholds
    from blocks.scoring import ScoringModels

    found = []
    for kind, name in ((QualityThresholds, thresholds_block), (ScoringModels, scoring_block)):
        if name is None:
            found.append(kind())
            continue
        try:
            found.append(kind.load(name))
        except ValueError as exc:
            raise UserError(f"no {kind.__name__} block {name!r} ({exc})") from None
    return found[0], found[1]
