"""Reproduce a stored job: render its stored workflow again, compare outputs and environments."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from db import jobs as db_jobs
from db.renders import RenderResult
from db.vocabulary import JobKind, JobStatus, Phase
from tasks.production import AttemptTarget, in_session
from tasks.rendering.request import RenderRequest
from tasks.scoring.images import load_frames

# What must match for an exact reproduction, as reported by ComfyUI's /system_stats or the
# animatic's own environment; anything else that differs is reported but not decisive.
ENVIRONMENT_KEYS = (
    ("comfyui_version",),
    ("pytorch_version",),
    ("python_version",),
    ("devices",),
    ("animatic_version",),
    ("pillow",),
    ("numpy",),
    ("device",),
)


class StoredJob(BaseModel):
    job_id: int
    project_id: int
    phase: Phase
    renderer: str
    seed: int | None
    cut_id: int | None
    character_id: int | None
    story_bible_version: int | None
    look_ids: list[int] = Field(default_factory=list)  # the cast's looks it was rendered in
    next_attempt: int  # of its reproductions
    workflow: dict[str, Any]
    workflow_sha256: str | None
    environment: dict[str, Any]
    outputs: list[dict[str, Any]]
    server: str | None
    prompt_id: str | None
    uploads: dict[str, str] = Field(default_factory=dict)  # name on the server -> local file


class Comparison(BaseModel):
    identical: bool
    original_sha256: str
    new_sha256: str
    mean_abs_diff: float | None = None  # 0-255 per channel, when not byte-identical
    max_abs_diff: int | None = None
    note: str = ""


class ReproductionReport(BaseModel):
    original_job_id: int
    reproduction_job_id: int
    renderer: str
    identical: bool
    comparisons: list[Comparison]
    environment_differences: dict[str, tuple[Any, Any]] = Field(default_factory=dict)
    workflow_sha256: str | None

    def summary(self) -> str:
        verdict = "identical output" if self.identical else "output differs"
        lines = [
            f"job {self.original_job_id} reproduced as job {self.reproduction_job_id} "
            f"({self.renderer}): {verdict}"
        ]
        for c in self.comparisons:
            if not c.identical:
                lines.append(
                    f"  {c.original_sha256[:12]} vs {c.new_sha256[:12]}: mean |diff| "
                    f"{c.mean_abs_diff} max {c.max_abs_diff} {c.note}".rstrip()
                )
        for key, (before, now) in self.environment_differences.items():
            lines.append(f"  environment {key}: {before!r} then, {now!r} now")
        return "\n".join(lines)


def read_stored_job(session, job_id: int) -> StoredJob:
    job = db_jobs.get_job(session, job_id)
    if job.params is None or not job.params.workflow:
        raise LookupError(f"job {job_id} has no stored workflow to reproduce (status {job.status})")
    return StoredJob(
        job_id=job.id,
        project_id=job.project_id,
        phase=job.phase,
        renderer=job.renderer,
        seed=job.params.seed,
        cut_id=job.cut_id,
        character_id=job.character_id,
        story_bible_version=job.story_bible_version,
        look_ids=[look.id for look in job.looks],
        next_attempt=1 + db_jobs.count_jobs(session, parent_job_id=job.id),
        workflow=job.params.workflow,
        workflow_sha256=job.params.workflow_sha256,
        environment=job.params.environment,
        outputs=[
            {"path": a.uri, "sha256": a.sha256, "kind": a.kind, "mime": a.mime}
            for a in job.artifacts
        ],
        server=job.comfyui_server,
        prompt_id=job.comfyui_prompt_id,
        uploads={
            u["name"]: u["source"]
            for u in (job.params.extra or {}).get("uploads", [])
            if isinstance(u, dict) and u.get("name") and u.get("source")
        },
    )


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


# What defines a device; free memory (vram_free, torch_vram_free) changes by the minute.
DEVICE_KEYS = ("name", "type", "index", "vram_total", "torch_vram_total")


def _defining(path: tuple[str, ...], value: Any) -> Any:
    if path == ("devices",) and isinstance(value, list):
        return [
            {k: d.get(k) for k in DEVICE_KEYS if k in d} if isinstance(d, dict) else d
            for d in value
        ]
    return value


def environment_differences(before: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple]:
    """What defines the environment and differs: versions, device names and total memory."""
    out = {}
    for path in ENVIRONMENT_KEYS:
        a, b = _defining(path, _dig(before, path)), _defining(path, _dig(now, path))
        if a != b and (a is not None or b is not None):
            out[".".join(path)] = (a, b)
    return out


def compare_outputs(original: dict[str, Any], new_path: str, new_sha: str) -> Comparison:
    if original["sha256"] == new_sha:
        return Comparison(identical=True, original_sha256=original["sha256"], new_sha256=new_sha)
    try:
        a, b = load_frames(original["path"]), load_frames(new_path)
    except (OSError, ValueError) as exc:  # unreadable, missing, or not pictures
        return Comparison(
            identical=False,
            original_sha256=original["sha256"],
            new_sha256=new_sha,
            note=f"pixels not compared: {exc}",
        )
    if a.shape != b.shape:
        return Comparison(
            identical=False,
            original_sha256=original["sha256"],
            new_sha256=new_sha,
            note=f"shapes differ: {a.shape} vs {b.shape}",
        )
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return Comparison(
        identical=False,
        original_sha256=original["sha256"],
        new_sha256=new_sha,
        mean_abs_diff=round(float(diff.mean()), 4),
        max_abs_diff=int(diff.max()),
        note="same pixels, different encoding" if diff.max() == 0 else "",
    )


@task(name="load-stored-job", cache_policy=NO_CACHE)
async def load_stored_job(job_id: int) -> StoredJob:
    return await in_session(read_stored_job, job_id)


def reproduction_target(stored: StoredJob) -> AttemptTarget:
    """A new job linked to the original, for the same subject and phase."""
    return AttemptTarget(
        project_id=stored.project_id,
        phase=stored.phase,
        kind=JobKind.REPRODUCTION,
        cut_id=stored.cut_id,
        character_id=stored.character_id,
        parent_job_id=stored.job_id,
        story_bible_version=stored.story_bible_version,
        look_ids=stored.look_ids,
    )


def reproduction_request(
    stored: StoredJob, job_id: int, out_dir: str, server_names: list[str]
) -> RenderRequest:
    """The stored workflow, submitted as it is. Reproductions have their own job id, so the
    prompt id is new and the server renders the graph again instead of re-attaching.
    `server_names` (block names or URLs) empty: the server the job recorded."""
    name = f"reproduction-of-{stored.job_id}-{stored.next_attempt:02d}"
    if not server_names and stored.server:
        server_names = [stored.server]  # the server that rendered it, by its recorded URL
    return RenderRequest(
        renderer=stored.renderer,
        job_id=job_id,
        attempt=stored.next_attempt,
        phase=stored.phase,
        label=f"job {stored.job_id}",
        name=name,
        out_dir=out_dir,
        seed=stored.seed or 0,
        workflow=stored.workflow,
        uploads=stored.uploads,
        servers=server_names,
    )


@task(name="record-reproduction", cache_policy=NO_CACHE)
async def record_reproduction(
    stored: StoredJob, job_id: int, result: RenderResult
) -> ReproductionReport:
    comparisons = [
        compare_outputs(original, new.path, new.sha256)
        for original, new in zip(stored.outputs, result.outputs, strict=False)
    ]
    if len(stored.outputs) != len(result.outputs):
        comparisons.append(
            Comparison(
                identical=False,
                original_sha256="",
                new_sha256="",
                note=f"{len(stored.outputs)} output(s) then, {len(result.outputs)} now",
            )
        )
    identical = bool(comparisons) and all(c.identical for c in comparisons)
    report = ReproductionReport(
        original_job_id=stored.job_id,
        reproduction_job_id=job_id,
        renderer=stored.renderer,
        identical=identical,
        comparisons=comparisons,
        environment_differences=environment_differences(stored.environment, result.environment),
        workflow_sha256=stored.workflow_sha256,
    )

    def run(session) -> None:
        # Stored as the original's workflow: what was asked for, byte for byte.
        as_submitted = result.model_copy(
            update=dict(
                workflow=stored.workflow,
                workflow_sha256=stored.workflow_sha256 or result.workflow_sha256,
            )
        )
        extra = {"reproduction": report.model_dump(mode="json")}
        db_jobs.record_render(session, job_id, as_submitted, extra=extra)
        job = db_jobs.get_job(session, job_id)
        job.status = JobStatus.PASSED if identical else JobStatus.FAILED
        job.explanation = report.summary()

    await in_session(run)
    return report
