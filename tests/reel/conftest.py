"""Reel fixtures: a two-scene episode whose cuts each stand for one way a cut can show.

Scene 1: C01 an approved 8-frame clip at 8 fps (its frames numbered in their red channel);
C02 an approved keyframe, 12 frames at 12 fps. Scene 2: C01 a failed keyframe flagged for
review, 6 frames at 8 fps; C02 nothing rendered, 10 frames at 10 fps; C03 an approved clip
whose file is not a picture. 1 + 1 + 0.75 + 1 + 1 = 4.75 s: 38 frames at the episode's 8 fps.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from db import jobs as db_jobs
from db.engine import session_scope
from db.models import Cut, JobKind, Phase, Scene, Verdict
from db.production_file import parse_production
from db.production_io import import_production
from db.renders import RenderOutput, RenderResult
from tasks.scoring.gates import MetricLine


def _cut(number: int, frames: int, fps: int, text: str) -> dict:
    return {"number": number, "description": text, "frames": frames, "fps": fps}


REEL_PRODUCTION = {
    "project": {"slug": "reel-short", "name": "Reel Short"},
    "story_bible": {"style_prompt": "clean line art"},
    "characters": [{"slug": "mio", "name": "Mio", "base_prompt": "1girl"}],
    "episodes": [
        {
            "number": 1,
            "title": "Five Cuts",
            "scenes": [
                {
                    "number": 1,
                    "title": "Rooftop",
                    "cast": ["mio"],
                    "cuts": [_cut(1, 8, 8, "Mio runs"), _cut(2, 12, 12, "Mio stops")],
                },
                {
                    "number": 2,
                    "title": "Street",
                    "cast": ["mio"],
                    "cuts": [
                        _cut(1, 6, 8, "rain falls"),
                        _cut(2, 10, 10, "a door opens"),
                        _cut(3, 8, 8, "the letter"),
                    ],
                },
            ],
        }
    ],
}

SIZE = (192, 108)
KEYFRAME_COLOUR = (30, 160, 90)
ATTEMPT_COLOUR = (200, 200, 40)


def clip_frame(i: int) -> Image.Image:
    return Image.new("RGB", SIZE, (20 + 25 * i, 60, 200))


def output(path: Path, frames: list[Image.Image] | None = None, raw: bytes | None = None) -> dict:
    if raw is not None:
        path.write_bytes(raw)
        kind, mime = "animation", "image/webp"
    elif len(frames) == 1:
        frames[0].save(path, format="PNG")
        kind, mime = "image", "image/png"
    else:
        frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
        kind, mime = "animation", "image/webp"
    data = path.read_bytes()
    return {
        "path": str(path), "kind": kind, "mime": mime,
        "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
        "width": SIZE[0], "height": SIZE[1], "frames": len(frames or [1]),
    }  # fmt: skip


def judged(s, cut: Cut, phase: Phase, out: dict, verdict: Verdict, fps: int) -> int:
    """A stored, judged attempt, the way the render task leaves one."""
    job, _ = db_jobs.get_or_create_job(
        s,
        project_id=cut.scene.episode.project_id,
        phase=phase,
        kind=JobKind.KEYFRAME if phase is Phase.GENERATION else JobKind.ANIMATION,
        attempt=1,
        cut_id=cut.id,
        renderer="animatic",
    )
    result = RenderResult(
        renderer="animatic", params={"seed": 1, "fps": fps}, workflow_sha256="0" * 64,
        outputs=[RenderOutput(**out)],
    )  # fmt: skip
    db_jobs.record_render(s, job.id, result)
    line = MetricLine(
        metric="aesthetic", value=6.0 if verdict is Verdict.PASSED else 4.0, threshold=5.5,
        comparator=">=", verdict=verdict,
    )  # fmt: skip
    db_jobs.record_judgement(s, job.id, verdict=verdict, explanation="judged", lines=[line])
    return job.id


@pytest.fixture
def reel_episode(db, tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    out = tmp_path / "outputs"
    out.mkdir()
    with session_scope() as s:
        import_production(s, parse_production(REEL_PRODUCTION, "reel.yaml", base_dir=tmp_path))
        cuts = s.scalars(select(Cut).join(Scene).order_by(Scene.number, Cut.number)).all()
        clip = judged(
            s, cuts[0], Phase.ANIMATION, output(out / "a.webp", [clip_frame(i) for i in range(8)]),
            Verdict.PASSED, fps=8,
        )  # fmt: skip
        keyframe = judged(
            s, cuts[1], Phase.GENERATION,
            output(out / "b.png", [Image.new("RGB", SIZE, KEYFRAME_COLOUR)]), Verdict.PASSED, 12,
        )  # fmt: skip
        attempt = judged(
            s, cuts[2], Phase.GENERATION,
            output(out / "c.png", [Image.new("RGB", SIZE, ATTEMPT_COLOUR)]), Verdict.FAILED, 8,
        )  # fmt: skip
        db_jobs.flag_for_review(s, attempt, "flagged for review after 1 attempt(s) of 1")
        broken = judged(
            s, cuts[4], Phase.ANIMATION, output(out / "e.webp", raw=b"not a picture at all"),
            Verdict.PASSED, fps=8,
        )  # fmt: skip
        return {
            "project": "reel-short",
            "episode_id": cuts[0].scene.episode_id,
            "cuts": [c.id for c in cuts],
            "jobs": [clip, keyframe, attempt, None, broken],
        }


from tests.flows.conftest import (  # noqa: E402, F401  (fixtures shared with the flow tests)
    save_blocks,
    small_production,
    stand_in_models,
)


def decoded(path: str) -> tuple[list[np.ndarray], dict]:
    """A video's frames (RGB, as ints) and its stream's codec, pixel format, size and rate."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "rate": stream.average_rate,
        }
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    return frames, info


def picture_difference(path_a: str, path_b: str) -> float:
    """The largest mean difference (0-255) between the frames of two videos at the same
    place; infinite when they do not have the same number of frames."""
    a, b = decoded(path_a)[0], decoded(path_b)[0]
    if len(a) != len(b) or not a:
        return float("inf")
    return max(float(np.abs(x - y).mean()) for x, y in zip(a, b, strict=True))
