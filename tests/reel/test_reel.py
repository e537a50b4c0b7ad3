"""The episode's reel, decoded back with the library that wrote it: timing, size, codec, what
each cut shows, the stored recipe, and byte-identical re-exports."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from anime.cli import app
from db import reels as db_reels
from db import review as db_review
from db.engine import session_scope
from db.models import Cut, Job, Phase, Reel, ReviewOutcome
from tasks.reel.encoding import ReelCodecError, check_codec
from tasks.reel.export import export_reel
from tasks.reel.slate import NOT_APPROVED, mark_not_approved, slate
from tests.reel.conftest import (
    ATTEMPT_COLOUR,
    KEYFRAME_COLOUR,
    SIZE,
    decoded,
    picture_difference,
)

runner = CliRunner()


def near(frame: np.ndarray, picture: Image.Image) -> float:
    return float(np.abs(frame - np.asarray(picture.convert("RGB")).astype(int)).mean())


def slate_of(cut_id: int, reason: str | None = None, size=SIZE) -> Image.Image:
    with session_scope() as s:
        return slate(db_reels.reel_cut(s, s.get(Cut, cut_id)), size, reason)


def test_the_reel_shows_each_cut_in_order_for_its_duration(reel_episode):
    summary = export_reel(reel_episode["episode_id"])
    frames, info = decoded(summary.path)
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "size": SIZE, "rate": 8}
    assert len(frames) == 38 == summary.frames  # (1 + 1 + 0.75 + 1 + 1) s at 8 fps
    assert summary.duration_seconds == pytest.approx(4.75)

    # C01: the approved clip, frame by frame (its red channel counts up by 25).
    reds = [f[40:70, 80:110, 0].mean() for f in frames[0:8]]
    assert all(b - a > 15 for a, b in zip(reds, reds[1:], strict=False))
    # C02: the approved keyframe held for its 12 frames at 12 fps = 8 reel frames.
    for f in frames[8:16]:
        assert np.abs(f[20:80, 20:170] - KEYFRAME_COLOUR).mean() < 6
    # C03: the flagged attempt, marked as not approved by a red band at the bottom.
    with session_scope() as s:
        flagged = db_reels.reel_cut(s, s.get(Cut, reel_episode["cuts"][2]))
    bare = Image.new("RGB", SIZE, ATTEMPT_COLOUR)
    marked = mark_not_approved(bare, flagged)
    for f in frames[16:22]:
        assert near(f, marked) < 4 < 8 < near(f, bare)
        assert np.abs(f[-12:, :, 0].mean() - NOT_APPROVED[0]) < 40  # a red band
    # C04: nothing rendered: its slate. C05: an undecodable clip: a slate saying why.
    cuts = reel_episode["cuts"]
    assert all(near(f, slate_of(cuts[3])) < 6 for f in frames[22:30])
    reason = summary.cuts[4]["reason"]
    assert "e.webp cannot be decoded" in reason
    assert all(near(f, slate_of(cuts[4], reason)) < 6 for f in frames[30:38])
    assert near(frames[22], slate_of(cuts[4], reason)) > near(frames[22], slate_of(cuts[3]))

    assert [c["source"] for c in summary.cuts] == [
        "animation", "keyframe", "attempt", "slate", "slate",
    ]  # fmt: skip
    assert [c["job_id"] for c in summary.cuts] == reel_episode["jobs"]
    assert [(c["start_frame"], c["frames"]) for c in summary.cuts] == [
        (0, 8), (8, 8), (16, 6), (22, 8), (30, 8),
    ]  # fmt: skip
    with session_scope() as s:
        reel = s.get(Reel, summary.reel_id)
        data = Path(reel.uri).read_bytes()
        assert reel.sha256 == hashlib.sha256(data).hexdigest() and reel.size_bytes == len(data)
        assert reel.episode_id == reel_episode["episode_id"] and reel.codec == "h264"
        sheet = Path(reel.contact_sheet_uri)
    with Image.open(sheet) as im:  # one row per scene: 2 rows, 3 columns (scene 2's cuts)
        assert im.format == "PNG" and im.size == (8 + 3 * 200, 8 + 2 * 146)


def test_a_re_export_with_no_new_renders_is_byte_identical(reel_episode, tmp_path):
    episode = reel_episode["episode_id"]
    first = export_reel(episode)
    before = Path(first.path).read_bytes()
    again = export_reel(episode)
    assert (again.reel_id, again.sha256) == (first.reel_id, first.sha256)
    assert Path(again.path).read_bytes() == before
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reel)) == 1
    # Elsewhere, from scratch (no kept segments): every cut encoded again shows the same
    # pictures; byte for byte almost always, not always (tasks/reel/segments.py says why).
    elsewhere = export_reel(episode, root=tmp_path / "elsewhere")
    assert picture_difference(elsewhere.path, first.path) < 2 and elsewhere.cuts == first.cuts
    with session_scope() as s:
        # A person approves the flagged cut: the next reel shows it without the mark.
        db_review.decide(
            s, cut_id=reel_episode["cuts"][2], phase=Phase.GENERATION,
            outcome=ReviewOutcome.APPROVED, reviewer="dee",
        )  # fmt: skip
    changed = export_reel(episode)
    assert changed.sha256 != first.sha256 and changed.cuts[2]["source"] == "keyframe"
    assert Path(first.path).read_bytes() == before  # the earlier reel is kept as it was


def test_retimed_to_another_fps_and_only_approved(reel_episode):
    summary = export_reel(reel_episode["episode_id"], fps=24, only_approved=True)
    frames, info = decoded(summary.path)
    assert info["rate"] == 24 and len(frames) == 114  # 4.75 s at 24 fps
    reds = [round(f[40:70, 80:110, 0].mean()) for f in frames[0:24]]
    assert reds[0:3] == [reds[0]] * 3 and reds[3] > reds[2] + 15  # each clip frame 3 times
    assert summary.cuts[2]["source"] == "slate"  # the unapproved attempt is left out
    assert summary.only_approved


def test_an_episode_with_nothing_rendered_is_a_reel_of_slates(reel_episode):
    with session_scope() as s:
        for job in s.scalars(select(Job)):
            s.delete(job)
    summary = export_reel(reel_episode["episode_id"])
    assert {c["source"] for c in summary.cuts} == {"slate"}
    frames, info = decoded(summary.path)
    assert len(frames) == 38 and info["size"] == (640, 360)  # no output to take a size from
    assert near(frames[0], slate_of(reel_episode["cuts"][0], size=(640, 360))) < 6
    assert all(c["status"] == "not rendered yet" for c in summary.cuts)


def test_export_command(reel_episode, tmp_path):
    target = tmp_path / "ep1.mp4"
    done = runner.invoke(app, ["episode", "export", "reel-short", "1", "-o", str(target)])
    assert done.exit_code == 0, done.output
    assert "38 frames at 8 fps" in done.output and "E01S02C02 slate" in done.output
    with session_scope() as s:
        stored = s.scalar(select(Reel.uri))
    assert target.read_bytes() == Path(stored).read_bytes()

    missing = runner.invoke(app, ["episode", "export", "reel-short", "9"])
    assert missing.exit_code == 1 and "no episode 9" in missing.output
    assert "Traceback" not in missing.output
    bad = runner.invoke(app, ["episode", "export", "reel-short", "1", "--only", "maybe"])
    assert bad.exit_code == 2


def test_a_codec_the_library_lacks_is_one_clear_message(reel_episode, monkeypatch):
    with pytest.raises(ReelCodecError, match="has no libnot264 encoder"):
        check_codec("libnot264")
    monkeypatch.setattr("tasks.reel.encoding.CODEC", "libnot264")
    done = runner.invoke(app, ["episode", "export", "reel-short", "1"])
    assert done.exit_code == 1
    assert done.output.strip().splitlines() == [
        f"error: the media library (PyAV {av.__version__}) has no libnot264 encoder: install a "
        "PyAV build whose FFmpeg includes it (the wheels on PyPI do)"
    ]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Reel)) == 0
