"""The domain API serves no file outside the production (issue 18): a reference row that points
out of it (stored before import checked, or a symlink changed since) is a 404 naming no path."""

from __future__ import annotations

import shutil

import httpx
import pytest
from sqlalchemy import select

from anime.api.app import create_app
from db.engine import session_scope
from db.models import Character
from tests.conftest import EXAMPLE
from tests.foundation.hostile import bomb_png

pytestmark = pytest.mark.asyncio(loop_scope="session")


def api() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t")


def _first_reference(path: str) -> int:
    """Aki's first reference, its stored path changed to ``path``."""
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        ref = aki.references[0]
        ref.path = path
        ref.sha256 = None
        return ref.id


@pytest.fixture
def copied(db, tmp_path, monkeypatch):
    """The example imported from a copy, so its folder may be changed underneath."""
    from db.production_file import load_production
    from db.production_io import import_production

    monkeypatch.setenv("ANIME_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    target = tmp_path / "moonlit"
    shutil.copytree(EXAMPLE.parent, target)
    with session_scope() as s:
        import_production(s, load_production(target / "production.yaml"))
    return target


@pytest.mark.parametrize("stored", ["../../../../etc/hostname", "/etc/hostname"])
async def test_a_reference_out_of_the_production_is_not_served(copied, stored):
    ref_id = _first_reference(stored)
    async with api() as client:
        response = await client.get(f"/api/anime/references/{ref_id}/thumbnail")
    assert response.status_code == 404
    assert "outside the production" in response.text
    assert "/etc" not in response.text and str(copied) not in response.text


async def test_a_symlink_turned_outward_after_import_is_not_served(copied, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(EXAMPLE.parent / "refs" / "aki-front.png", outside)
    link = copied / "refs" / "aki-front.png"
    link.unlink()
    link.symlink_to(outside)
    ref_id = _first_reference("refs/aki-front.png")
    async with api() as client:
        response = await client.get(f"/api/anime/references/{ref_id}/thumbnail")
    assert response.status_code == 404 and str(tmp_path) not in response.text


async def test_a_reference_replaced_by_a_bomb_or_garbage_is_a_404_naming_no_path(copied):
    ref_id = _first_reference("refs/aki-front.png")
    target = copied / "refs" / "aki-front.png"
    async with api() as client:
        served = await client.get(f"/api/anime/references/{ref_id}/thumbnail")
        bomb_png(target, 13_000, 13_000)
        bomb = await client.get(f"/api/anime/references/{ref_id}/thumbnail")
        target.write_text("not a picture")
        garbage = await client.get(f"/api/anime/references/{ref_id}/thumbnail")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    for response in (bomb, garbage):
        assert response.status_code == 404, response.text
        assert "cannot be read as a picture" in response.text
        assert str(copied) not in response.text
