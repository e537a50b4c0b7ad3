"""What a person sees of a run in the Prefect UI: a cuts table, a report with thumbnails,
and a progress bar."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import os
import time
from pathlib import Path
from uuid import UUID

from PIL import Image
from prefect import task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from db import jobs as db_jobs
from tasks.production import in_session

THUMB = (160, 90)


class CutOutcome(BaseModel):
    cut_id: int
    label: str
    phase: str
    status: str  # approved | needs_review | not_ready | error
    verdict: str  # passed | failed | could_not_judge
    job_id: int | None = None
    attempts: int = 0
    skipped: bool = False  # already approved before this run
    decided_by: str | None = None  # the person whose decision the verdict is, if not the gates
    output: str | None = None
    explanation: str = ""
    scores: dict[str, float | None] = Field(default_factory=dict)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]


def thumbnail_link(job_id: int | None) -> str | None:
    """The domain API's thumbnail of a job's output, when its base URL is configured
    (ANIME_API_URL): the browser loads it from there, the report stays small."""
    base = os.environ.get("ANIME_API_URL", "").strip().rstrip("/")
    if not base or job_id is None:
        return None
    return f"{base}/api/anime/jobs/{job_id}/thumbnail"


def review_link(episode_id: int | None) -> str | None:
    base = os.environ.get("ANIME_API_URL", "").strip().rstrip("/")
    if not base or episode_id is None:
        return None
    return f"{base}/review/episodes/{episode_id}?needs_review=1"


def thumbnail_data_uri(path: str | None) -> str | None:
    """A small inline JPEG so the report shows pictures without a file server."""
    if not path:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return _thumbnail(path, stat.st_mtime_ns, stat.st_size)


def prepare_thumbnail(job_id: int | None, path: str | None) -> None:
    """Make the phase report's thumbnail of a judged output now (in the judge's worker
    thread, the picture just read), not for every cut at the phase's end: 300 of them held
    the event loop for 1.2 s of the episode's tail (docs/benchmarks.md)."""
    if thumbnail_link(job_id) is None:
        thumbnail_data_uri(path)


@functools.lru_cache(maxsize=4096)  # a few kB each; a file rendered again has a new mtime
def _thumbnail(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        with Image.open(path) as im:
            im.seek(0)
            thumb = im.convert("RGB")
            thumb.thumbnail(THUMB)
            buf = io.BytesIO()
            thumb.save(buf, format="JPEG", quality=70)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


# Seconds of the job's latest run (its attempt, not an earlier failed run's).
TIME_COLUMNS = ("queue_wait_s", "execution_s", "download_s", "scoring_s")


def _run_times(session, job_ids: list[int | None]) -> dict[int, dict[str, float | None]]:
    runs = db_jobs.latest_runs(session, [i for i in job_ids if i is not None])
    return {
        job_id: {
            c: (None if getattr(run, c) is None else round(getattr(run, c), 3))
            for c in TIME_COLUMNS
        }
        for job_id, run in runs.items()
    }


@task(name="publish-phase-report", cache_policy=NO_CACHE)
async def publish_phase_report(
    title: str,
    phase: str,
    outcomes: list[CutOutcome],
    gate_explanation: str,
    episode_id: int | None = None,
) -> None:
    key = _slug(f"{title}-{phase}")
    metrics = sorted({m for o in outcomes for m in o.scores})
    times = await in_session(_run_times, [o.job_id for o in outcomes])
    rows = [
        {
            "cut": o.label,
            "status": o.status,
            "verdict": o.verdict,
            "attempts": o.attempts,
            "job": o.job_id,
            "decided_by": o.decided_by,
            **times.get(o.job_id, dict.fromkeys(TIME_COLUMNS)),
            **{m: (None if o.scores.get(m) is None else round(o.scores[m], 4)) for m in metrics},
        }
        for o in outcomes
    ]
    await acreate_table_artifact(
        table=rows, key=f"{key}-cuts", description=f"{title}: {phase} cuts"
    )
    lines = [f"# {title}: {phase}", "", "## Gate", "", "```", gate_explanation, "```", ""]
    lines += [
        "## Cuts",
        "",
        "| cut | picture | status | verdict | attempts |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        uri = (thumbnail_link(o.job_id) if o.output else None) or thumbnail_data_uri(o.output)
        picture = f"![{o.label}]({uri})" if uri else (o.output or "none")
        lines.append(f"| {o.label} | {picture} | {o.status} | {o.verdict} | {o.attempts} |")
    flagged = [o for o in outcomes if o.status == "needs_review"]
    if flagged:
        lines += ["", "## Needs review", ""]
        if page := review_link(episode_id):
            lines += [f"Decide on the [review page]({page}).", ""]
        for o in flagged:
            lines += [f"### {o.label} (job {o.job_id})", "", "```", o.explanation, "```", ""]
    await acreate_markdown_artifact(
        markdown="\n".join(lines), key=f"{key}-report", description=f"{title}: {phase} report"
    )


class Progress:
    """A progress artifact updated at most every ``interval`` seconds (and at the end):
    each update is an API write and an event, and a bar that moves every 5 s reads the same."""

    def __init__(self, total: int, description: str, interval: float = 5.0) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.description = description
        self.interval = interval
        self._id: UUID | None = None
        self._last = 0.0
        # Updates go one at a time, each with the count as it is then: two in flight at once
        # could reach the server out of order and leave the bar short of 100%.
        self._writing = asyncio.Lock()
        self._written = 0

    @property
    def artifact_id(self) -> str | None:
        return str(self._id) if self._id else None

    async def start(self) -> None:
        self._id = await acreate_progress_artifact(progress=0.0, description=self.description)

    async def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self._id and (self.done == self.total or now - self._last >= self.interval):
            self._last = now
            async with self._writing:
                if self._written == self.done:
                    return  # the update just before this one already said as much
                self._written = self.done
                await aupdate_progress_artifact(self._id, 100.0 * self._written / self.total)
