"""`anime review`: list an episode's cuts flagged for review, approve or reject them."""

from __future__ import annotations

import getpass

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema
from db.vocabulary import Phase, ReviewOutcome

review_app = typer.Typer(
    help="Review: decide on cuts the quality gates flagged.", no_args_is_help=True
)
app.add_typer(review_app, name="review")

PhaseOption = typer.Option(Phase.GENERATION, help="generation (keyframe) or animation (clip)")


@review_app.command("list")
@clear_errors
def list_cuts(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    all_cuts: bool = typer.Option(False, "--all", help="every cut, not only flagged ones"),
) -> None:
    """Cuts that need review, with the attempt speaking for each and its explanation."""
    from db import review as db_review
    from db.engine import session_scope
    from db.queries import get_episode

    require_current_schema()
    with session_scope() as s:
        ep = get_episode(s, project, episode)
        found = db_review.episode_review(s, ep.id, needs_review_only=not all_cuts)
        typer.echo(f"{project} episode {episode}: {found.flagged} cut(s) need review")
        for cut in found.cuts:
            for p in cut.phases:
                speaking = next((a for a in p.attempts if a.job_id == p.speaking_job), None)
                why = (speaking.explanation.splitlines() or [""])[0] if speaking else ""
                job = f"job {p.speaking_job}" if p.speaking_job else "no judged attempt"
                typer.echo(f"  {cut.label} {p.phase:<10} {p.status:<12} {job}  {why}")


def _decide(
    project: str, episode: int, cut: str, phase: Phase, outcome: ReviewOutcome, reviewer: str,
    comment: str,
) -> None:  # fmt: skip
    from db import review as db_review
    from db.engine import session_scope
    from db.queries import get_episode

    require_current_schema()
    with session_scope() as s:
        ep = get_episode(s, project, episode)
        found = db_review.find_cut(s, ep.id, cut)
        try:
            d = db_review.decide(
                s,
                cut_id=found.id,
                phase=phase,
                outcome=outcome,
                reviewer=reviewer,
                comment=comment,
                source="cli",
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        label = db_review.cut_label(found)
        typer.echo(
            f"{label} {phase.value}: {outcome.value} by {d.reviewer} (job {d.job_id}, "
            f"automatic verdict was {d.previous_verdict.value if d.previous_verdict else 'none'})"
        )


Reviewer = typer.Option(None, help="who decides (default: your login name)")
Comment = typer.Option("", help="why: stored with the decision")
CutArg = typer.Argument(..., help="cut label (E01S01C02), scene.cut (1.2) or cut id")


@review_app.command("approve")
@clear_errors
def approve(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    cut: str = CutArg,
    phase: Phase = PhaseOption,
    reviewer: str | None = Reviewer,
    comment: str = Comment,
) -> None:
    """Approve a cut's current output: re-runs skip it and its gate counts it as passed."""
    who = reviewer or getpass.getuser()
    _decide(project, episode, cut, phase, ReviewOutcome.APPROVED, who, comment)


@review_app.command("reject")
@clear_errors
def reject(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    cut: str = CutArg,
    phase: Phase = PhaseOption,
    reviewer: str | None = Reviewer,
    comment: str = Comment,
) -> None:
    """Reject a cut's output: the next run renders it again with new seeds."""
    who = reviewer or getpass.getuser()
    _decide(project, episode, cut, phase, ReviewOutcome.REJECTED, who, comment)
