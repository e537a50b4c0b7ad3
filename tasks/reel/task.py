"""The reel step of a run: assemble it, and show it in the run's Prefect artifacts."""

from __future__ import annotations

import os

import anyio
from prefect import get_run_logger, task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.reel.encoding import ReelCodecError
from tasks.reel.export import ReelSummary, export_reel
from tasks.reports import _slug, thumbnail_data_uri


def reel_links(reel_id: int) -> tuple[str | None, str | None]:
    """(video, contact sheet) URLs on the domain API, when its base URL is configured."""
    base = os.environ.get("ANIME_API_URL", "").strip().rstrip("/")
    if not base:
        return None, None
    reel = f"{base}/api/anime/reels/{reel_id}"
    return f"{reel}/file", f"{reel}/contact-sheet"


async def publish_reel(summary: ReelSummary) -> None:
    key = _slug(f"{summary.label}-reel")
    video, sheet = reel_links(summary.reel_id)
    await acreate_link_artifact(
        link=video or f"file://{summary.path}",
        link_text=f"{summary.label}: reel ({summary.duration_seconds:.1f} s)",
        key=key,
        description=f"{summary.label}: the episode as one MP4",
    )
    preview = sheet or thumbnail_data_uri(summary.contact_sheet)
    lines = [f"# {summary.label}: reel", "", "```", summary.describe(), "```", ""]
    if preview:
        lines += [f"![contact sheet]({preview})", ""]
    lines += ["| cut | shows | job | frames | status |", "|---|---|---|---|---|"]
    for c in summary.cuts:
        status = c["reason"] or c["status"]
        lines.append(
            f"| {c['label']} | {c['source']} | {c['job_id'] or ''} | {c['frames']} | {status} |"
        )
    await acreate_markdown_artifact(
        markdown="\n".join(lines), key=f"{key}-sheet", description=f"{summary.label}: reel cuts"
    )


@task(name="assemble-reel", cache_policy=NO_CACHE)
async def assemble_reel(episode_id: int, flow_run_id: str | None = None) -> ReelSummary | None:
    """The episode's reel from what is stored now; None (and one clear log line) when the media
    library cannot encode it, so a finished run is not turned into a crashed one."""
    logger = get_run_logger()
    try:
        summary = await anyio.to_thread.run_sync(
            lambda: export_reel(episode_id, flow_run_id=flow_run_id)
        )
    except (ReelCodecError, LookupError) as exc:
        logger.error("no reel: %s", exc)
        return None
    await publish_reel(summary)
    logger.info("%s", summary.describe())
    return summary
