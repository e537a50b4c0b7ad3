"""`anime comfyui add | list | remove` and `--server NAME-or-URL`, on a real Prefect test
server and the project's ComfyUI test server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from anime.cli import app
from blocks.comfyui import ComfyUIServer, ComfyUIServerNotFound, find_server
from tests.comfyui_server import ComfyUITestServer

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


def _limit(name: str):
    async def read():
        async with get_client() as client:
            limits = await client.read_global_concurrency_limits(200, 0)
        return next((lim for lim in limits if lim.name == name), None)

    return asyncio.run(read())


def _comfy_cli(*args: str):
    return runner.invoke(app, ["comfyui", *args])


def test_add_saves_the_block_and_its_limit_list_shows_it_remove_forgets_both(tmp_path):
    name = f"local-{uuid.uuid4().hex[:6]}"
    with ComfyUITestServer(tmp_path / "comfy") as comfy:
        added = _comfy_cli("add", name, comfy.url, "--slots", "3")
        assert added.exit_code == 0, added.output
        server = asyncio.run(ComfyUIServer.aload(name))
        assert server.base_url == comfy.url and server.slots == 3
        limit = _limit(server.concurrency_limit)
        assert limit is not None and limit.limit == 3

        # Adding again updates block and limit: no duplicate, no error.
        again = _comfy_cli("add", name, comfy.url, "--slots", "1")
        assert again.exit_code == 0, again.output
        assert _limit(server.concurrency_limit).limit == 1

        listed = _comfy_cli("list")
        assert listed.exit_code == 0, listed.output
        line = next(row for row in listed.output.splitlines() if row.startswith(f"{name}:"))
        assert comfy.url in line and "1 slot(s)" in line and "up, ComfyUI" in line
        assert "queue 0" in line

    down = _comfy_cli("list")  # the test server has stopped
    line = next(row for row in down.output.splitlines() if row.startswith(f"{name}:"))
    assert "UNREACHABLE" in line

    removed = _comfy_cli("remove", name)
    assert removed.exit_code == 0, removed.output
    assert _limit(server.concurrency_limit) is None
    with pytest.raises(ComfyUIServerNotFound, match=name):
        asyncio.run(find_server(name))

    unknown = _comfy_cli("remove", name)
    assert unknown.exit_code == 1
    assert f"no ComfyUI server named {name!r}" in unknown.stderr
    assert "anime comfyui add" in unknown.stderr and "Traceback" not in unknown.output


def test_add_reads_the_token_from_the_named_variable_and_never_prints_it(monkeypatch):
    name = f"proxied-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("STUDIO_COMFY_TOKEN", "tok-secret-42")
    added = _comfy_cli("add", name, "http://127.0.0.1:9", "--token-env", "STUDIO_COMFY_TOKEN")
    assert added.exit_code == 0, added.output
    assert "tok-secret-42" not in added.output
    saved = asyncio.run(ComfyUIServer.aload(name))
    assert saved.auth_token is not None and saved.auth_token.get_secret_value() == "tok-secret-42"

    missing = _comfy_cli("add", name, "http://127.0.0.1:9", "--token-env", "NOT_SET_ANYWHERE")
    assert missing.exit_code == 1
    assert "--token-env NOT_SET_ANYWHERE: that environment variable is not set" in missing.stderr
    bad = _comfy_cli("add", name, "gpu-1:8188")
    assert bad.exit_code == 1 and "base_url must be an http(s) URL" in bad.stderr
    assert _comfy_cli("remove", name).exit_code == 0


async def test_a_server_is_found_by_name_or_by_url():
    name = f"by-url-{uuid.uuid4().hex[:6]}"
    url = f"http://127.0.0.1:{40000 + uuid.uuid4().int % 20000}"
    await ComfyUIServer(base_url=url, slots=4).asave(name)
    saved = await find_server(url + "/")  # the saved block, with its slots
    assert saved.slots == 4
    bare = await find_server("http://127.0.0.1:1")
    assert bare.base_url == "http://127.0.0.1:1" and bare.slots == 2
    with pytest.raises(ComfyUIServerNotFound, match="anime comfyui add nowhere"):
        await find_server("nowhere")


async def test_a_render_that_finds_a_block_without_its_limit_creates_it(tmp_path):
    from tasks.rendering.comfyui import server_pool

    name = f"nolimit-{uuid.uuid4().hex[:6]}"
    limit = f"comfyui:fresh-{uuid.uuid4().hex[:8]}"
    with ComfyUITestServer(tmp_path / "comfy") as comfy:
        # Saved the old way, without `anime comfyui add`: no limit exists yet.
        await ComfyUIServer(base_url=comfy.url, slots=2, concurrency_limit_name=limit).asave(name)
        assert await asyncio.to_thread(_limit, limit) is None
        pool = await server_pool([name])
        async with pool.slot() as server:  # strict: it would raise if the limit were missing
            assert server.base_url == comfy.url
        assert (await asyncio.to_thread(_limit, limit)).limit == 2
