"""The production's own reference images against its own gates, as `anime import` and
`anime calibrate` both report it (tasks/scoring/reference_gates.py does the checking)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from anime.cli.app import UserError

if TYPE_CHECKING:
    from blocks.quality import QualityThresholds
    from blocks.scoring import ScoringModels

ScoringBlockOption = typer.Option(
    None,
    "--scoring-block",
    help="a saved ScoringModels block for the reference check (default: its defaults)",
)
ThresholdsBlockOption = typer.Option(
    None,
    "--thresholds-block",
    help="a saved QualityThresholds block for the reference check (default: its defaults)",
)
CheckReferencesOption = typer.Option(
    True,
    "--check-references/--no-check-references",
    help="warn about the production's own reference images its gates would reject",
)


@dataclass
class ReferenceBlocks:
    """The blocks the check uses; None: the block's defaults, made only when the check runs
    (the block classes import Prefect, which an import without models never needs)."""

    thresholds: QualityThresholds | None
    models: ScoringModels | None


def reference_blocks(thresholds_block: str | None, scoring_block: str | None) -> ReferenceBlocks:
    """Named blocks are loaded now, so an unknown name stops the command (exit 1) before it
    changes anything."""
    if thresholds_block is None and scoring_block is None:
        return ReferenceBlocks(None, None)
    from blocks.quality import QualityThresholds
    from blocks.scoring import ScoringModels

    found = []
    for kind, name in ((QualityThresholds, thresholds_block), (ScoringModels, scoring_block)):
        if name is None:
            found.append(None)
            continue
        try:
            found.append(kind.load(name))
        except ValueError as exc:
            raise UserError(f"no {kind.__name__} block {name!r} ({exc})") from None
    return ReferenceBlocks(found[0], found[1])


def report_reference_check(
    references: list[tuple[str, str]],
    blocks: ReferenceBlocks,
    *,
    note_when_not_installed: bool,
) -> None:
    """Warnings on stderr; never fails the command. Run it after the transaction: loading
    CLIP takes seconds and needs no database."""
    from tasks.scoring.loading.places import aesthetic_head_path

    quiet = blocks.models is None and not note_when_not_installed
    if quiet and not aesthetic_head_path(None).is_file():
        return  # the default models are not installed: a stat, no Prefect, no torch
    from blocks.quality import QualityThresholds
    from blocks.scoring import ScoringModels
    from tasks.scoring.reference_gates import check_references

    check = check_references(
        references, blocks.thresholds or QualityThresholds(), blocks.models or ScoringModels()
    )
    for line in check.lines(note_when_not_installed=note_when_not_installed):
        typer.echo(line, err=True)
