"""Routing by capability: a graph goes only to the servers that have its node types and model
files; when none has, one error names what is missing on which server; `anime comfyui check`
shows the same."""

from __future__ import annotations

import copy
import uuid

import pytest
from typer.testing import CliRunner

from anime.cli import app
from blocks.comfyui import ComfyUIServer
from tasks.rendering.comfyui import NoCapableServer, capable_pool, probe_graph
from tests.comfyui_server import ComfyUITestServer
from tests.comfyui_server.server import default_object_info

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _without(node_type: str) -> dict:
    nodes = copy.deepcopy(default_object_info())
    del nodes[node_type]
    return nodes


async def _saved(comfy: ComfyUITestServer) -> str:
    name = f"route-{uuid.uuid4().hex[:8]}"
    await ComfyUIServer(base_url=comfy.url, concurrency_limit_name=name).asave(name)
    return name


async def test_a_cut_goes_only_where_its_nodes_and_models_are(tmp_path):
    graph = probe_graph("keyframe")  # names v1-5-pruned-emaonly.safetensors
    ckpt = {"ckpt_name": ["v1-5-pruned-emaonly.safetensors"]}
    with (
        ComfyUITestServer(tmp_path / "a", extra_choices=ckpt) as has_all,
        ComfyUITestServer(tmp_path / "b") as no_model,
        ComfyUITestServer(tmp_path / "c", extra_choices=ckpt, object_info=_without("KSampler"))
        as no_node,
    ):
        names = [await _saved(no_model), await _saved(has_all), await _saved(no_node)]
        pool = await capable_pool(names, graph, "keyframe")
        assert [s.base_url for s in pool.servers] == [has_all.url]

        with pytest.raises(NoCapableServer) as caught:
            await capable_pool([names[0], names[2]], graph, "keyframe")
        message = str(caught.value)
        assert "template 'keyframe' can render on none of its 2 ComfyUI servers" in message
        assert f"{names[0]} ({no_model.url})" in message and "v1-5-pruned-emaonly" in message
        assert f"{names[2]} ({no_node.url})" in message and "KSampler" in message


def test_check_shows_what_a_server_lacks(tmp_path):
    runner = CliRunner()
    with ComfyUITestServer(tmp_path / "c", object_info=_without("SaveAnimatedWEBP")) as comfy:
        lacking = runner.invoke(app, ["comfyui", "check", comfy.url, "--template", "preview"])
        assert lacking.exit_code == 1, lacking.output
        assert "preview: CANNOT render on" in lacking.output
        assert "SaveAnimatedWEBP" in lacking.output
    with ComfyUITestServer(tmp_path / "d") as comfy:
        fine = runner.invoke(app, ["comfyui", "check", comfy.url, "-t", "preview"])
        assert fine.exit_code == 0, fine.output
        assert f"preview: can render on {comfy.url}" in fine.output
        unknown = runner.invoke(app, ["comfyui", "check", comfy.url, "-t", "nope"])
        assert unknown.exit_code == 1 and "--template" in unknown.stderr
