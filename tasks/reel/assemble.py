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
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from db.reels import ReelCut, ReelPlan
from tasks.reel.contact_sheet import contact_sheet
from tasks.reel.encoding import CODEC, ReelWriter, check_codec
from tasks.reel.footage import FootageError, decode, fit, retime
from tasks.reel.slate import mark_not_approved, slate
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


def cut_frames(cut: ReelCut, count: int, fps: int, size: tuple[int, int]):
    """The cut's frames in the reel and how they were made: (frames, source, reason)."""
    if cut.footage is None:
        return [slate(cut, size)] * count, "slate", None
    try:
        source = decode(cut.footage.path)
    except FootageError as exc:
        return [slate(cut, size, reason=str(exc))] * count, "slate", str(exc)
    if cut.footage.kind == "image" or len(source) == 1:
        frames = [fit(source[0], size)] * count
    else:
        fitted = [fit(f, size) for f in source]
        frames = retime(fitted, cut.footage.fps, count, fps)
    if cut.source == "attempt":
        marked: dict[int, Image.Image] = {}
        frames = [marked.setdefault(id(f), mark_not_approved(f, cut)) for f in frames]
    return frames, cut.source, None


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
    """Encode the plan's reel and contact sheet under ``root`` (default: the artifacts root)."""
    check_codec()
    if not plan.cuts:
        raise LookupError(f"{plan.project} episode {plan.episode} has no cuts to put in a reel")
    folder = reel_folder(plan, root)
    folder.mkdir(parents=True, exist_ok=True)
    size = (plan.width, plan.height)
    recipe: list[dict[str, Any]] = []
    scenes: dict[int, list[tuple[str, str, Image.Image]]] = {}
    fd, partial_name = tempfile.mkstemp(dir=folder, suffix=".mp4.part")
    os.close(fd)
    partial = Path(partial_name)
    try:
        with ReelWriter(partial, plan.fps, size) as writer:
            for cut, (first, count) in zip(plan.cuts, cut_spans(plan.cuts, plan.fps), strict=True):
                frames, source, reason = cut_frames(cut, count, plan.fps, size)
                for frame in frames:
                    writer.write(frame)
                poster = frames[len(frames) // 2] if frames else slate(cut, size)
                scenes.setdefault(cut.scene, []).append((cut.label, source, poster))
                footage = cut.footage
                recipe.append(
                    {
                        "cut_id": cut.cut_id,
                        "label": cut.label,
                        "scene": cut.scene,
                        "source": source,
                        "status": cut.status,
                        "reason": reason,
                        "job_id": footage.job_id if footage else None,
                        "artifact_id": footage.artifact_id if footage else None,
                        "artifact_sha256": footage.sha256 if footage else None,
                        "cut_frames": cut.frames,
                        "cut_fps": cut.fps,
                        "start_frame": first,
                        "frames": count,
                    }
                )
            total = writer.frames
        path, sha = _place(partial, folder, "reel", ".mp4")
    finally:
        partial.unlink(missing_ok=True)
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
    )


__all__ = ["CODEC", "BuiltReel", "build_reel", "cut_spans"]
