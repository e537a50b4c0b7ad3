"""The reel served by the domain API by id: its recipe as JSON, the MP4 (seekable), the sheet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.reel.export import export_reel
from tests.review.conftest import api

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_reel_is_served_by_id(reel_episode):
    episode = reel_episode["episode_id"]
    async with api() as client:
        none_yet = await client.get(f"/api/anime/episodes/{episode}/reel")
        assert none_yet.status_code == 404 and "anime episode export" in none_yet.json()["error"]
        summary = export_reel(episode)
        latest = (await client.get(f"/api/anime/episodes/{episode}/reel")).json()
        assert latest["reel_id"] == summary.reel_id and latest["sha256"] == summary.sha256
        assert [c["job_id"] for c in latest["cuts"]] == reel_episode["jobs"]
        assert latest["duration_seconds"] == pytest.approx(4.75)

        video = await client.get(f"/api/anime/reels/{summary.reel_id}/file")
        assert video.headers["content-type"] == "video/mp4"
        assert video.content == Path(summary.path).read_bytes()
        part = await client.get(
            f"/api/anime/reels/{summary.reel_id}/file", headers={"Range": "bytes=0-99"}
        )
        assert part.status_code == 206 and part.content == video.content[:100]
        sheet = await client.get(f"/api/anime/reels/{summary.reel_id}/contact-sheet")
        assert sheet.headers["content-type"] == "image/png" and sheet.content[:4] == b"\x89PNG"
        missing = await client.get("/api/anime/reels/4242")
        assert missing.status_code == 404 and "no reel with id 4242" in missing.json()["error"]
