"""A reel is made of segments: each cut's frames encoded alone (an MP4 that starts on a
keyframe) with the picture the contact sheet shows, kept under a name made of everything its
frames come from. The reel is the segments' packets in one MP4, not encoded again.

So a re-export encodes only the cuts whose footage, status, timing or size changed, and a run
can encode each cut as it finishes (tasks/reel/ahead.py), leaving little for its end. The
same segments always join into the same bytes, so a re-export finds the reel it made before.

A segment encoded again (on another machine, or after its file was lost) shows the same
pictures, and almost always in the same bytes, but not always: in four fresh-clone test runs
of 2026-12-02/03, x264 (one thread, fixed options) gave an 8-frame clip a 738-byte first
packet instead of its usual 736, from frames, thread and floating-point control word shown
identical; thousands of encodes of the same frames here, on either core, never did. The cause
is not found (x264's macroblock-tree uses approximate float SIMD, one suspect).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from db.reels import ReelCut
from tasks.reel.contact_sheet import THUMB
from tasks.reel.encoding import CODEC, ENCODER_OPTIONS, Packet, encode
from tasks.reel.footage import FootageError, decode, fit, retime
from tasks.reel.slate import mark_not_approved, slate

# Raised when what a segment holds changes for the same inputs (slate layout, marks, encoder).
SEGMENT_FORMAT = 2  # 2: RGB to YUV on one thread
# Segments no reel used for this long are removed when a reel of the episode is built.
KEEP_UNUSED_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Segment:
    packets: Path  # the cut's frames encoded alone (H.264 packets, one after the other)
    poster: Path  # the frame the contact sheet shows, at its size (PNG)
    index: list[list[int]]  # per packet: pts, dts, keyframe, size (from the segment's JSON)
    frames: int
    source: str  # what the frames show: animation | keyframe | attempt | slate
    reason: str | None  # why a slate stands in for footage that exists
    kept: bool = False  # found as encoded before, not encoded by this call

    def read(self) -> list[Packet]:
        data = self.packets.read_bytes()
        packets, offset = [], 0
        for pts, dts, keyframe, size in self.index:
            packets.append(Packet(pts, dts, bool(keyframe), data[offset : offset + size]))
            offset += size
        if offset != len(data):
            raise ValueError(f"{self.packets.name} does not hold the packets its index lists")
        return packets


def segment_key(cut: ReelCut, count: int, fps: int, size: tuple[int, int]) -> str:
    """Everything the segment's frames come from, hashed: the cut as the reel reads it (its
    footage's path, hash and status, its texts for the slate and the mark), the footage file
    as it is on this machine (missing, or replaced), the frame count, fps and size."""
    footage = cut.footage
    on_disk: list[int] | None = None
    if footage is not None:
        try:
            info = os.stat(footage.path)
            on_disk = [info.st_size, info.st_mtime_ns]
        except OSError:
            on_disk = None
    import av

    what = {
        "format": SEGMENT_FORMAT,
        # Another FFmpeg or x264 may encode the same frames to other bytes.
        "codec": [CODEC, ENCODER_OPTIONS, av.__version__, av.library_versions],
        "cut": dataclasses.asdict(cut),
        "file": on_disk,
        "count": count,
        "fps": fps,
        "size": list(size),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def cut_frames(
    cut: ReelCut, count: int, fps: int, size: tuple[int, int]
) -> tuple[list[Image.Image], str, str | None]:
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


def segment(cut: ReelCut, count: int, fps: int, size: tuple[int, int], folder: Path) -> Segment:
    """The cut's segment under ``folder``: the one kept there for the same inputs, else
    encoded now (written beside its name and moved in place once complete)."""
    key = segment_key(cut, count, fps, size)
    packets, poster, about = (folder / f"{key}{suffix}" for suffix in (".h264", ".png", ".json"))
    made = _kept(packets, poster, about)
    if made is not None:
        now = time.time()
        for path in (packets, poster, about):
            os.utime(path, (now, now))  # in use: not one to remove as unused
        return Segment(
            packets, poster, made["packets"], count, made["source"], made["reason"], kept=True
        )
    folder.mkdir(parents=True, exist_ok=True)
    frames, source, reason = cut_frames(cut, count, fps, size)
    # The contact sheet's picture at the sheet's size: small to keep, quick to read back.
    shown = (frames[len(frames) // 2] if frames else slate(cut, size)).copy()
    shown.thumbnail(THUMB)
    encoded = encode(frames, fps, size)
    partials = [_partial(folder, suffix) for suffix in (".h264", ".png", ".json")]
    try:
        partials[0].write_bytes(b"".join(p.data for p in encoded))
        shown.save(partials[1], format="PNG", compress_level=1)
        index = [[p.pts, p.dts, int(p.keyframe), len(p.data)] for p in encoded]
        partials[2].write_text(json.dumps({"source": source, "reason": reason, "packets": index}))
        # The description last: a segment counts as kept only once all three are in place.
        for partial, final in zip(partials, (packets, poster, about), strict=True):
            partial.replace(final)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
    return Segment(packets, poster, index, count, source, reason)


def _kept(packets: Path, poster: Path, about: Path) -> dict | None:  # type: ignore[type-arg]
    """What a kept segment says it holds, or None when it is not all there (a file removed,
    cut short, or not ours): then it is encoded again."""
    try:
        made = json.loads(about.read_text())
        whole = sum(size for *_, size in made["packets"]) == packets.stat().st_size
        return made if whole and poster.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _partial(folder: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=f".part{suffix}")
    os.close(fd)
    return Path(name)


def remove_unused(folder: Path, used: list[Segment], older_than_s: float = KEEP_UNUSED_S) -> int:
    """Remove the segments no reel has used for ``older_than_s``; how many files went."""
    keep = {s.packets.stem for s in used}
    cutoff = time.time() - older_than_s
    # A partial file is a segment being written, unless a crash left it (an hour is plenty).
    partial_cutoff = time.time() - 3600
    removed = 0
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.stem in keep:
            continue
        try:
            if path.stat().st_mtime < (partial_cutoff if ".part" in path.name else cutoff):
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
