"""`anime calibrate PROJECT [CHARACTER]`: each character's face threshold from its references."""

from __future__ import annotations

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema
from anime.cli.reference_check import (
    CheckReferencesOption,
    ScoringBlockOption,
    ThresholdsBlockOption,
    reference_blocks,
    report_reference_check,
)


@app.command("calibrate")
@clear_errors
def calibrate(
    project: str = typer.Argument(..., help="project slug"),
    character: str | None = typer.Argument(None, help="character slug (default: the whole cast)"),
    model: str | None = typer.Option(
        None, "--model", help="face model name (default: every model with reference embeddings)"
    ),
    scoring_block: str | None = ScoringBlockOption,
    thresholds_block: str | None = ThresholdsBlockOption,
    check_references: bool = CheckReferencesOption,
) -> None:
    """Store each character's face threshold: its own references (genuine pairs) against the
    other characters' references (impostors), per face model. Fewer than two references keep
    the default gate (0.70). Also warns about every reference image of the production its own
    gates would reject (a style reference below the aesthetic gate, for instance)."""
    from db.briefs import production_references
    from db.engine import session_scope
    from db.face_calibration import character_slugs, project_id_of
    from tasks.face_calibration import calibrate_project

    require_current_schema()
    blocks = reference_blocks(thresholds_block, scoring_block) if check_references else None
    with session_scope() as session:
        project_id = project_id_of(session, project)
        slugs = character_slugs(session, project_id)
        if character is not None and character not in slugs:
            raise UserError(f"project {project!r} has no character {character!r} (it has {slugs})")
        stored = calibrate_project(session, project_id, character=character, model_name=model)
        references = production_references(session, project_id)
    if blocks:  # asked for: a note says so when the models are not installed
        report_reference_check(references, blocks, note_when_not_installed=True)
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

