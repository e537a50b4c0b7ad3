"""One tiny synthetic clip through every metric the block serves (``anime models check``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

SIZE, FRAMES = 128, 9


def tiny_clip() -> np.ndarray:
    """A disk panning over a gradient: any working model gives a finite score."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    base = np.stack([xx * 2, yy * 2, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    frames = []
    for cx in np.linspace(30, SIZE - 30, FRAMES):
        frame = base.copy()
        frame[(xx - cx) ** 2 + (yy - SIZE / 2) ** 2 < 15**2] = (250, 240, 40)
        frames.append(frame)
    return np.stack(frames)


def run_check(models: ScoringModels) -> tuple[list[str], bool]:
    """Lines to print, and whether every metric was measured (face: the model loaded)."""
    from db.briefs import CutBrief
    from tasks.scoring.face_embedder import load_face_embedder
    from tasks.scoring.judge import CLIP_METRICS, score_clip, score_keyframe
    from tasks.scoring.loading.errors import ModelUnavailable

    clip = tiny_clip()
    with tempfile.TemporaryDirectory() as tmp:
        style = Path(tmp) / "style.png"
        Image.fromarray(clip[0]).save(style)
        brief = CutBrief(
            project_id=0, project_slug="check", episode_id=0, episode_number=0, scene_id=0,
            scene_number=0, cut_id=0, cut_number=0,
        )  # fmt: skip
        brief.style.style_references = [str(style)]
        results = score_keyframe(clip[0], brief, models, {"aesthetic", "style_adherence"})
        results += score_clip(clip, brief, models, set(CLIP_METRICS), loop=False)
    lines, ok = [], True
    for r in results:
        if r.measured:
            lines.append(f"{r.metric}: {r.value:.4f} ({r.model})")
        else:
            ok = False
            lines.append(f"{r.metric}: could not judge: {r.reason}")
    try:
        embedder = load_face_embedder(models)
        faces = embedder.detect_and_embed(clip[0])
        lines.append(
            f"face_similarity / sheet_consistency: {embedder.name} loads "
            f"({len(faces)} face(s) in the test frame; it has no face to find)"
        )
    except ModelUnavailable as exc:
        ok = False
        lines.append(f"face_similarity / sheet_consistency: could not judge: {exc}")
    return lines, ok
