"""Thumbnails made by concurrent requests: files with equal content share a cache entry."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from anime.api.media import _cached_thumbnail
from db.review import MediaFile


def test_concurrent_requests_for_one_thumbnail_all_get_the_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANIME_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    source = tmp_path / "cut.png"
    Image.new("RGB", (640, 360), (10, 120, 200)).save(source)
    media = MediaFile(path=str(source), mime="image/png", kind="image", sha256="same-content")
    for round_ in range(5):  # a race needs a few tries to show; each round starts uncached
        for cached in (tmp_path / "thumbs").glob("*"):
            cached.unlink()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: _cached_thumbnail(media, 320), range(16)))
        assert len(set(results)) == 1 and results[0][:2] == b"\xff\xd8", f"round {round_}"
        assert [p.name for p in (tmp_path / "thumbs").iterdir()] == ["same-content-320.jpg"]
