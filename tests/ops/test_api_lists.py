"""The domain API's list routes: projects, characters and episodes, with their ids."""

from __future__ import annotations

import httpx
import pytest

from anime.api.app import create_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


def api() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t")


async def test_lists_give_the_ids_the_other_routes_need(production):
    async with api() as client:
        projects = (await client.get("/api/anime/projects")).json()
        assert [(p["slug"], p["characters"], p["episodes"]) for p in projects] == [
            ("moonlit-courier", 2, 1)
        ]
        characters = (await client.get("/api/anime/projects/moonlit-courier/characters")).json()
        aki = next(c for c in characters if c["slug"] == "aki")
        assert {"outfit/courier-jacket", "pose/running"} <= {
            f"{v['kind']}/{v['name']}" for v in aki["variations"]
        }
        # The id listed is the one the variation route takes; the new one shows as the API's.
        added = await client.post(
            f"/api/anime/characters/{aki['id']}/variations",
            json={"kind": "outfit", "name": "raincoat"},
        )
        assert added.status_code == 201, added.text
        again = (await client.get("/api/anime/projects/moonlit-courier/characters")).json()
        sources = {v["name"]: v["source"] for c in again for v in c["variations"]}
        assert sources["raincoat"] == "api" and sources["courier-jacket"] == "file"

        episodes = (await client.get("/api/anime/projects/moonlit-courier/episodes")).json()
        assert [(e["number"], e["scenes"], e["cuts"]) for e in episodes] == [(1, 3, 8)]
        scenes = await client.get(f"/api/anime/episodes/{episodes[0]['id']}/scenes")
        assert scenes.status_code == 200 and scenes.json()["number"] == 1

        missing = await client.get("/api/anime/projects/nope/episodes")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no project 'nope' (projects: moonlit-courier)"
