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


def test_the_phase_report_shows_a_cut_rendered_again_at_the_same_path_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's inline thumbnails are made when a cut is judged and kept: a file written
    again (a re-render of the attempt) must not show the earlier picture."""
    import base64
    import io
    import os

    from tasks.reports import prepare_thumbnail, thumbnail_data_uri

    monkeypatch.delenv("ANIME_API_URL", raising=False)  # inline thumbnails, not API links
    source = tmp_path / "cut.png"

    def colour_shown() -> tuple[int, int, int]:
        uri = thumbnail_data_uri(str(source))
        assert uri is not None and uri.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))) as im:
            return im.convert("RGB").getpixel((10, 10))

    Image.new("RGB", (640, 360), (200, 20, 20)).save(source)
    prepare_thumbnail(7, str(source))
    assert colour_shown()[0] > 150
    stat = source.stat()
    Image.new("RGB", (640, 360), (20, 20, 200)).save(source)
    # A later mtime by the least step the clock shows: the same size, a new picture.
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert colour_shown()[2] > 150
    assert thumbnail_data_uri(str(tmp_path / "gone.png")) is None
