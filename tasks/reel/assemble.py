"""Assemble an episode's reel from a ReelPlan: frames per cut, the MP4, the contact sheet.

Each cut takes ``round(end * fps) - round(start * fps)`` frames, its start and end measured in
exact seconds from the episode's beginning, so the reel lasts the sum of the cuts' durations
whatever their own fps. Files are written beside their final name and moved in place once
complete, named by their content: a reel that exists is never half-overwritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from db.reels import ReelCut, ReelPlan
from tasks.reel.contact_sheet import contact_sheet
from tasks.reel.encoding import CODEC, check_codec, write_mp4
from tasks.reel.segments import remove_unused, segment
from tasks.storage import artifacts_root


@dataclass
class BuiltReel:
    path: Path
    sha256: str
    size_bytes: int
    frames: int
    fps: int
    width: int
    height: int
    contact_sheet: Path
    contact_sheet_sha256: str
    cuts: list[dict[str, Any]] = field(default_factory=list)
    encoded: int = 0  # cuts encoded for this reel; the others' segments were kept from before

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.fps


def cut_spans(cuts: list[ReelCut], fps: int) -> list[tuple[int, int]]:
    """(first frame, frame count) of each cut in the reel."""
    spans, start = [], Fraction(0)
    for cut in cuts:
        end = start + Fraction(cut.frames, cut.fps)
        first, last = round(start * fps), round(end * fps)
        spans.append((first, last - first))
        start = end
    return spans


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _place(partial: Path, folder: Path, stem: str, suffix: str) -> tuple[Path, str]:
    """Move a finished file to its content-addressed name; (path, sha256)."""
    sha = _sha256(partial)
    final = folder / f"{stem}-{sha[:16]}{suffix}"
    if final.is_file() and _sha256(final) == sha:
        partial.unlink()
    else:
        partial.replace(final)
    return final, sha


def reel_folder(plan: ReelPlan, root: Path | None = None) -> Path:
    return (root or artifacts_root()) / plan.project / f"ep{plan.episode:03d}" / "reel"


def build_reel(plan: ReelPlan, root: Path | None = None) -> BuiltReel:
    """Encode the plan's reel and contact sheet under ``root`` (default: the artifacts root):
    each cut's segment as kept from before or encoded now, then joined."""
    check_codec()
    if not plan.cuts:
        raise LookupError(f"{plan.project} episode {plan.episode} has no cuts to put in a reel")
    folder = reel_folder(plan, root)
    folder.mkdir(parents=True, exist_ok=True)
    size = (plan.width, plan.height)
    kept = segments_folder(plan, root)
    spans = cut_spans(plan.cuts, plan.fps)
    # Cuts not encoded before are encoded side by side, one encoder thread each (PyAV lets go
    # of the GIL while x264 works): about twice as fast on two cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(
            pool.map(
                lambda cut_span: segment(cut_span[0], cut_span[1][1], plan.fps, size, kept),
                zip(plan.cuts, spans, strict=True),
            )
        )
    fd, partial_name = tempfile.mkstemp(dir=folder, suffix=".mp4.part")
    os.close(fd)
    partial = Path(partial_name)
    try:
        total = write_mp4(partial, plan.fps, size, [part.read() for part in parts])
        path, sha = _place(partial, folder, "reel", ".mp4")
    finally:
        partial.unlink(missing_ok=True)
    remove_unused(kept, parts)
    recipe: list[dict[str, Any]] = []
    scenes: dict[int, list[tuple[str, str, Image.Image]]] = {}
    for cut, (first, count), part in zip(plan.cuts, spans, parts, strict=True):
        with Image.open(part.poster) as poster:
            scenes.setdefault(cut.scene, []).append((cut.label, part.source, poster.copy()))
        footage = cut.footage
        recipe.append(
            {
                "cut_id": cut.cut_id,
                "label": cut.label,
                "scene": cut.scene,
                "source": part.source,
                "status": cut.status,
                "reason": part.reason,
                "job_id": footage.job_id if footage else None,
                "artifact_id": footage.artifact_id if footage else None,
                "artifact_sha256": footage.sha256 if footage else None,
                "cut_frames": cut.frames,
                "cut_fps": cut.fps,
                "start_frame": first,
                "frames": count,
            }
        )
    sheet_partial = folder / f".contact-{os.getpid()}.png.part"
    # zlib's fastest level: a quarter of the time of the default, for a file 20% larger
    # (2.4 s against 0.55 s for a 300-cut sheet here).
    contact_sheet([scenes[s] for s in sorted(scenes)]).save(
        sheet_partial, format="PNG", compress_level=1
    )
    sheet, sheet_sha = _place(sheet_partial, folder, "contact-sheet", ".png")
    return BuiltReel(
        path=path,
        sha256=sha,
        size_bytes=path.stat().st_size,
        frames=total,
        fps=plan.fps,
        width=plan.width,
        height=plan.height,
        contact_sheet=sheet,
        contact_sheet_sha256=sheet_sha,
        cuts=recipe,
        encoded=sum(1 for part in parts if not part.kept),
    )


def segments_folder(plan: ReelPlan, root: Path | None = None) -> Path:
    """Where the episode's segments are kept, beside its reels."""
    return reel_folder(plan, root) / "segments"


__all__ = ["CODEC", "BuiltReel", "build_reel", "cut_spans"]
