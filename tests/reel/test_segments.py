"""A reel from kept segments: each cut encoded alone, under a name made of what its frames come
from, so a re-export encodes only the cuts that changed, and a segment that is not whole is
encoded again, never put in a reel."""

from __future__ import annotations

import os
import time
from pathlib import Path

from db import review as db_review
from db.engine import session_scope
from db.models import Phase, ReviewOutcome
from tasks.reel.export import export_reel
from tests.reel.conftest import picture_difference


def kept(tmp_path: Path) -> set[str]:
    """The kept segments' names (one per encoded cut)."""
    return {p.stem for p in (tmp_path / "artifacts").rglob("segments/*.h264")}


def test_a_re_export_encodes_only_the_cut_that_changed(reel_episode, tmp_path):
    first = export_reel(reel_episode["episode_id"])
    before = kept(tmp_path)
    assert len(before) == 5  # one segment per cut
    with session_scope() as s:
        db_review.decide(
            s, cut_id=reel_episode["cuts"][2], phase=Phase.GENERATION,
            outcome=ReviewOutcome.APPROVED, reviewer="dee",
        )  # fmt: skip
    changed = export_reel(reel_episode["episode_id"])
    after = kept(tmp_path)
    # The approved cut loses its "not approved" mark: one new segment, the four others reused.
    assert len(after - before) == 1 and before <= after
    assert changed.sha256 != first.sha256
    sources = [c["source"] for c in changed.cuts]
    assert sources == ["animation", "keyframe", "keyframe", "slate", "slate"]


def test_a_segment_cut_short_is_encoded_again_and_the_reel_is_the_same(reel_episode, tmp_path):
    first = export_reel(reel_episode["episode_id"])
    segments = list((tmp_path / "artifacts").rglob("segments/*.h264"))
    for packets in segments:
        packets.write_bytes(packets.read_bytes()[:-10])  # a disk filled up, a copy stopped
    again = export_reel(reel_episode["episode_id"])
    # Every cut encoded again, whole, and the reel shows the same pictures (byte for byte
    # almost always: tasks/reel/segments.py says why not always).
    assert again.encoded == len(segments) == 5
    assert picture_difference(again.path, first.path) < 2


def test_segments_no_reel_used_for_a_week_are_removed(reel_episode, tmp_path):
    export_reel(reel_episode["episode_id"])
    folder = next((tmp_path / "artifacts").rglob("segments"))
    stale = folder / "0123456789abcdef0123456789abcdef.h264"
    stale.write_bytes(b"from an old export")
    recent = folder / "fedcba9876543210fedcba9876543210.h264"
    recent.write_bytes(b"from this morning's export")
    eight_days = time.time() - 8 * 24 * 3600
    os.utime(stale, (eight_days, eight_days))
    export_reel(reel_episode["episode_id"])
    assert not stale.exists() and recent.exists()
    assert len(kept(tmp_path)) == 6  # the reel's five, and the recent one


def test_cuts_encoded_ahead_are_not_encoded_again_by_the_reel(reel_episode, tmp_path):
    """The run hands each finished scene's cuts to ReelAhead; its process encodes their
    segments, and the reel at the end takes them as kept."""
    from tasks.reel.ahead import ReelAhead

    ahead = ReelAhead(reel_episode["episode_id"])
    ahead.add(reel_episode["cuts"])
    ahead.close(finish=True)
    # The three cuts with footage that decodes, and the broken one (a slate saying why); the
    # cut with nothing rendered is left for the end.
    assert len(kept(tmp_path)) == 4
    summary = export_reel(reel_episode["episode_id"])
    assert summary.encoded == 1 and len(kept(tmp_path)) == 5
    assert "1 of 5 cuts encoded now, the others kept from before" in summary.describe()
