"""Benchmark productions, built in code: one episode of N cuts in scenes of 8, nobody cast.

Every cut renders with the model-free `preview` template, so any ComfyUI (and the test
server) can render it. `seed_history` adds what a finished production leaves behind (jobs,
their parameters, artifacts, scores, gates) in bulk, for the database timings.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from db.engine import session_scope
from db.models import (
    Artifact,
    Cut,
    Episode,
    GateDecision,
    GateScope,
    GenerationParams,
    Job,
    JobKind,
    JobStatus,
    Phase,
    PhaseGate,
    Project,
    QualityScore,
    Scene,
    Verdict,
)
from db.production_file import parse_production
from db.production_io import import_production

PROJECT = "bench-studio"
CUTS_PER_SCENE = 8


def production_data(cuts: int, slug: str = PROJECT) -> dict[str, Any]:
    scenes = []
    for first in range(0, cuts, CUTS_PER_SCENE):
        number = first // CUTS_PER_SCENE + 1
        scenes.append(
            {
                "number": number,
                "title": f"Scene {number}",
                "location": "rooftop",
                "time_of_day": "night",
                "cuts": [
                    {
                        "number": i + 1,
                        "description": f"wide shot {first + i + 1} of the city at night",
                        "frames": 16,
                        "fps": 8,
                        "template": "preview",
                    }
                    for i in range(min(CUTS_PER_SCENE, cuts - first))
                ],
            }
        )
    return {
        "format_version": 1,
        "project": {
            "slug": slug,
            "name": "Bench Studio",
            "settings": {"default_template": "preview", "animation_template": "preview"},
        },
        "story_bible": {
            "style_prompt": "90s cel-shaded anime, clean line art",
            "negative_prompt": "photorealistic, lowres",
        },
        "episodes": [{"number": 1, "title": "The benchmark", "scenes": scenes}],
    }


def build_production(cuts: int, slug: str = PROJECT) -> str:
    """Import an N-cut production into the current database; returns the project slug."""
    production = parse_production(production_data(cuts, slug), f"<bench {cuts} cuts>")
    with session_scope() as session:
        import_production(session, production)
    return slug


METRICS = ("aesthetic", "style_adherence", "face_similarity")
CLIP_METRICS = ("temporal_lpips", "motion_smoothness", "subject_consistency")


def seed_history(
    slug: str = PROJECT, jobs_per_cut: int = 5, scores_per_job: int = 6
) -> dict[str, int]:
    """Bulk-insert a finished production's records for every cut of the project: per cut,
    `jobs_per_cut` jobs (3 keyframe attempts, then animation attempts), each with its
    parameters, one artifact and `scores_per_job` scores; and a gate per phase."""
    now = datetime.now(UTC)
    with session_scope() as session:
        project = session.scalar(select(Project).where(Project.slug == slug))
        assert project is not None, slug
        episode = session.scalar(select(Episode).where(Episode.project_id == project.id))
        cut_ids = list(
            session.scalars(
                select(Cut.id)
                .join(Scene)
                .where(Scene.episode_id == episode.id)
                .order_by(Scene.number, Cut.number)
            )
        )
        job_rows = []
        for cut_id in cut_ids:
            for i in range(jobs_per_cut):
                keyframe = i < 3
                last = i == 2 or i == jobs_per_cut - 1
                job_rows.append(
                    {
                        "project_id": project.id,
                        "phase": Phase.GENERATION if keyframe else Phase.ANIMATION,
                        "kind": JobKind.KEYFRAME if keyframe else JobKind.ANIMATION,
                        "cut_id": cut_id,
                        "attempt": i + 1 if keyframe else i - 2,
                        "status": JobStatus.PASSED if last else JobStatus.FAILED,
                        "verdict": Verdict.PASSED if last else Verdict.FAILED,
                        "renderer": "comfyui",
                        "story_bible_version": 1,
                        "comfyui_prompt_id": hashlib.md5(f"{cut_id}:{i}".encode()).hexdigest(),
                        "comfyui_server": "http://gpu-1:8188",
                        "explanation": "Job judged: 3 passed, 0 failed.",
                        "queued_at": now,
                        "started_at": now,
                        "finished_at": now + timedelta(seconds=12),
                    }
                )
        job_ids = list(session.scalars(insert(Job).returning(Job.id), job_rows))
        workflow = {str(n): {"class_type": "KSampler", "inputs": {"seed": n}} for n in range(12)}
        session.execute(
            insert(GenerationParams),
            [
                {
                    "job_id": job_id,
                    "template": "keyframe",
                    "seed": job_id * 7919,
                    "checkpoint": "sd15.safetensors",
                    "sampler": "euler",
                    "scheduler": "normal",
                    "steps": 20,
                    "cfg": 7.0,
                    "width": 512,
                    "height": 512,
                    "frames": 16,
                    "positive_prompt": "1girl, rooftop, night, " * 4,
                    "negative_prompt": "lowres",
                    "workflow": workflow,
                    "workflow_sha256": hashlib.sha256(str(job_id).encode()).hexdigest(),
                    "environment": {"comfyui_version": "0.3.64", "pytorch_version": "2.4"},
                }
                for job_id in job_ids
            ],
        )
        artifact_ids = list(
            session.scalars(
                insert(Artifact).returning(Artifact.id),
                [
                    {
                        "job_id": job_id,
                        "kind": "image",
                        "uri": f"/srv/artifacts/{slug}/job-{job_id}/frame_00001_.png",
                        "sha256": hashlib.sha256(f"a{job_id}".encode()).hexdigest(),
                        "mime": "image/png",
                        "size_bytes": 400_000,
                        "width": 512,
                        "height": 512,
                        "frames": 1,
                    }
                    for job_id in job_ids
                ],
            )
        )
        metrics = (METRICS + CLIP_METRICS)[:scores_per_job]
        session.execute(
            insert(QualityScore),
            [
                {
                    "job_id": job_id,
                    "artifact_id": artifact_id,
                    "metric": metric,
                    "subject": "",
                    "value": 0.5 + (job_id % 7) / 20,
                    "threshold": 0.5,
                    "comparator": ">=",
                    "verdict": Verdict.PASSED,
                    "model": "stand-in",
                    "details": {},
                }
                for job_id, artifact_id in zip(job_ids, artifact_ids, strict=True)
                for metric in metrics
            ],
        )
        session.execute(
            insert(PhaseGate),
            [
                {
                    "project_id": project.id,
                    "scope": GateScope.EPISODE,
                    "episode_id": episode.id,
                    "phase": phase,
                    "items_total": len(cut_ids),
                    "items_passed": len(cut_ids),
                    "pass_rate": 1.0,
                    "required_rate": 0.8,
                    "decision": GateDecision.OPEN,
                    "explanation": "Phase gate OPEN",
                    "details": {},
                }
                for phase in (Phase.GENERATION, Phase.ANIMATION)
            ],
        )
    return {
        "cuts": len(cut_ids),
        "jobs": len(job_ids),
        "scores": len(job_ids) * len(metrics),
        "episode_id": episode.id,
    }
