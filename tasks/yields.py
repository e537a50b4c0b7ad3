"""Yield in the quality phase's Prefect artifacts: per episode, phase, scene and character."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE

from db import yields as db_yields
from db.yields import YieldFigures
from tasks.production import in_session
from tasks.reports import _slug

COLUMNS = (
    ("first pass", "first_pass_yield", "share"),
    ("attempts / approved", "attempts_per_approved", "num"),
    ("render s / approved s", "render_seconds_per_approved_second", "num"),
    ("could not judge", "could_not_judge_share", "share"),
    ("people decided", "human_share", "share"),
)


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0%}" if kind == "share" else f"{value:.2f}"


def yield_markdown(title: str, report: db_yields.EpisodeYield) -> str:
    head = "| | approved | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [f"# {title}: yield", "", head, "|---" * (len(COLUMNS) + 2) + "|"]

    def row(name: str, f: YieldFigures) -> str:
        cells = " | ".join(_cell(getattr(f, attr), kind) for _, attr, kind in COLUMNS)
        return f"| {name} | {f.approved}/{f.items} | {cells} |"

    lines.append(row("**episode**", report.episode))
    lines += [row(f"phase {p}", f) for p, f in report.by_phase.items()]
    lines += [row(f"scene {s}", f) for s, f in sorted(report.by_scene.items())]
    lines += [row(f"character {c}", f) for c, f in sorted(report.by_character.items())]
    lines += [
        "",
        "An item is a cut in one phase (its keyframe, its animation). First pass: its first "
        "attempt passed the gates. Render seconds: all attempts, started to finished, over the "
        "screen time of approved items. Could not judge: share of judged attempts. People "
        "decided: share of items with a person's decision.",
    ]
    return "\n".join(lines)


@task(name="publish-yield", cache_policy=NO_CACHE)
async def publish_yield(episode_id: int, title: str) -> db_yields.EpisodeYield:
    report = await in_session(db_yields.episode_yield, episode_id)
    await acreate_markdown_artifact(
        markdown=yield_markdown(title, report),
        key=f"{_slug(title)}-quality-yield",
        description=f"{title}: yield per episode, phase, scene and character",
    )
    return report
