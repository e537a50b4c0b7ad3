"""The test server answers what a real ComfyUI 0.3.64 answered (samples/ are captures).

If these fail, the test server has drifted from the real protocol and every other ComfyUI
test proves less than it claims.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from PIL import Image

from tests.comfyui.helpers import basic_graph
from tests.comfyui_server import ComfyUITestServer, sample

CLIENT = "3535e2aea2354a1ab460b07fc724d063"


def _validation_cases() -> dict[str, dict[str, Any] | None]:
    """The graphs behind each captured 400 (node ids as in the capture)."""
    base = basic_graph(prefix="probe_basic")

    def changed(node: str, **inputs: Any) -> dict[str, Any]:
        graph = json.loads(json.dumps(base))
        graph[node]["inputs"].update(inputs)
        return graph

    missing = json.loads(json.dumps(base))
    del missing["1"]["inputs"]["width"]
    combo = {
        "1": base["1"],
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "magic",
                "width": 32,
                "height": 32,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "p"}},
    }
    unknown = changed("2")
    unknown["1"]["class_type"] = "NoSuchNode"
    model = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "m"}},
    }
    load = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "not_there.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "l"}},
    }
    return {
        "out_of_range": changed("1", width=0),
        "wrong_type": changed("1", width="abc"),
        "missing_input": missing,
        "bad_combo": combo,
        "unknown_class": unknown,
        "no_outputs": {"1": base["1"], "2": base["2"]},
        "dangling_link": changed("3", images=["99", 0]),
        "missing_model_file": model,
        "missing_input_image": load,
        "no_prompt_key": None,
    }


def _without_tracebacks(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _without_tracebacks(v) for k, v in body.items() if k != "traceback"}
    if isinstance(body, list):
        return [_without_tracebacks(v) for v in body]
    return body


@pytest.mark.parametrize("case", list(_validation_cases()))
def test_validation_errors_match_the_captured_bodies(comfy: ComfyUITestServer, case: str) -> None:
    expected = sample("prompt_post_validation_errors.json")[case]
    graph = _validation_cases()[case]
    payload = {"client_id": CLIENT} if graph is None else {"prompt": graph, "client_id": CLIENT}
    answer = httpx.post(f"{comfy.url}/prompt", json=payload)
    assert answer.status_code == expected["status"]
    assert _without_tracebacks(answer.json()) == _without_tracebacks(expected["body"])


def test_malformed_json_is_a_plain_500(comfy: ComfyUITestServer) -> None:
    expected = sample("prompt_post_validation_errors.json")["malformed_json"]
    answer = httpx.post(f"{comfy.url}/prompt", content=b"{not json")
    assert (answer.status_code, answer.text) == (expected["status"], expected["body"])


def _shape(messages: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    # The test server reports progress for every node (documented difference): compare the
    # rest of the sequence, message types and data keys, in order.
    return [
        (m["type"], tuple(sorted(m["data"])))
        for m in messages
        if "type" in m and m["type"] not in ("progress", "progress_state")
    ]


async def _run_and_listen(
    comfy: ComfyUITestServer, graph: dict[str, Any], prompt_id: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    async with websockets.connect(f"ws://127.0.0.1:{comfy.port}/ws?clientId={CLIENT}") as ws:
        hello = json.loads(await ws.recv())
        [captured] = sample("ws_on_connect.json")
        assert hello == {"type": captured["type"], "data": captured["data"]}
        body: dict[str, Any] = {"prompt": graph, "client_id": CLIENT}
        if prompt_id:
            body["prompt_id"] = prompt_id
        async with httpx.AsyncClient() as http:
            posted = (await http.post(f"{comfy.url}/api/prompt", json=body)).json()
        messages = []
        while True:
            raw = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            messages.append(message)
            if message["type"] == "executing" and message["data"]["node"] is None:
                return posted["prompt_id"], messages


async def test_success_sequence_and_history_match_the_capture(comfy: ComfyUITestServer) -> None:
    graph = sample("history_basic.json")["35540a03-3e5a-4297-9468-8f3c1d466816"]["prompt"][2]
    prompt_id, messages = await _run_and_listen(comfy, graph)

    assert _shape(messages) == _shape(sample("ws_basic_sequence.json"))
    expected = sample("history_basic.json")["35540a03-3e5a-4297-9468-8f3c1d466816"]
    entry = httpx.get(f"{comfy.url}/history/{prompt_id}").json()[prompt_id]
    assert entry["outputs"] == expected["outputs"]
    assert entry["meta"] == expected["meta"]
    assert entry["prompt"][2:] == [graph, {"client_id": CLIENT}, ["3"]]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    assert [m[0] for m in entry["status"]["messages"]] == [
        m[0] for m in expected["status"]["messages"]
    ]
    view = httpx.get(
        f"{comfy.url}/view", params={"filename": "probe_basic_00001_.png", "type": "output"}
    )
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    assert view.headers["content-disposition"] == 'filename="probe_basic_00001_.png"'
    assert len(view.content) == 437  # the very size the real server's PNG had


async def test_identical_resubmission_is_served_from_cache(comfy: ComfyUITestServer) -> None:
    graph = basic_graph(prefix="probe_basic")
    await _run_and_listen(comfy, graph)
    files_before = comfy.output_files()
    prompt_id, messages = await _run_and_listen(comfy, graph)

    assert _shape(messages) == _shape(sample("ws_resubmit_cached_sequence.json")["ws"])
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert sorted(cached["data"]["nodes"]) == ["1", "2", "3"]
    replay = next(m for m in messages if m["type"] == "executed")
    assert replay["data"]["output"]["images"][0]["filename"] == "probe_basic_00001_.png"
    assert comfy.output_files() == files_before  # no new file


async def test_execution_error_sequence_and_history_match(comfy: ComfyUITestServer) -> None:
    expected = sample("history_execution_error.json")["7431534e-24e9-43d2-aecf-95958fcae427"]
    prompt_id, messages = await _run_and_listen(comfy, expected["prompt"][2])

    assert _shape(messages) == _shape(sample("ws_execution_error_sequence.json"))
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    captured = next(
        m["data"]
        for m in sample("ws_execution_error_sequence.json")
        if m["type"] == "execution_error"
    )
    for key in (
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "current_inputs",
    ):
        assert error[key] == captured[key], key
    entry = httpx.get(f"{comfy.url}/history/{prompt_id}").json()[prompt_id]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    assert entry["outputs"] == {}


async def test_interrupt_lands_at_a_tick_and_is_recorded(tmp_path: Path) -> None:
    expected = sample("history_interrupted.json")["8a14b9a8-ec58-45fb-8283-58c806e4d5ff"]
    with ComfyUITestServer(tmp_path / "c", render_time_s=1.0) as comfy:
        graph = basic_graph()
        listening = asyncio.create_task(_run_and_listen(comfy, graph, "slow"))
        while not comfy.queue()["queue_running"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert httpx.post(f"{comfy.url}/interrupt", json={"prompt_id": "slow"}).status_code == 200
        _, messages = await listening
        entry = comfy.history()["slow"]
    interrupted = next(m["data"] for m in messages if m["type"] == "execution_interrupted")
    captured = expected["status"]["messages"][-1]
    assert sorted(interrupted) == sorted(captured[1])
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)


def test_queue_history_and_view_answers(slow_comfy: ComfyUITestServer) -> None:
    url = slow_comfy.url
    for color in (1, 2):
        httpx.post(f"{url}/prompt", json={"prompt": basic_graph(color=color), "client_id": CLIENT})
    queue = httpx.get(f"{url}/queue").json()
    shape = sample("queue_busy.json")
    assert set(queue) == set(shape)
    assert len(queue["queue_running"]) == 1 and len(queue["queue_pending"]) == 1
    assert [len(item) for item in queue["queue_pending"]] == [len(shape["queue_pending"][0])]
    pending = queue["queue_pending"][0][1]
    assert httpx.get(f"{url}/history/{pending}").json() == {}  # queued: {} is not "lost"
    assert httpx.post(f"{url}/queue", json={"delete": [pending]}).status_code == 200
    assert httpx.get(f"{url}/api/queue").json()["queue_pending"] == []
    assert httpx.get(f"{url}/history/no-such-id").json() == {}
    assert httpx.get(f"{url}/prompt").json() == {"exec_info": {"queue_remaining": 1}}
    missing = httpx.get(f"{url}/view", params={"filename": "nope.png", "type": "output"})
    assert (missing.status_code, missing.content) == (404, b"")
    sneaky = httpx.get(f"{url}/view", params={"filename": "../x.png", "type": "output"})
    assert sneaky.status_code == 400
    httpx.post(f"{url}/interrupt")


def test_node_definitions_and_system_stats(comfy: ComfyUITestServer) -> None:
    url = comfy.url
    expected = {"EmptyImage": sample("object_info.json")["EmptyImage"]}
    assert httpx.get(f"{url}/object_info/EmptyImage").json() == expected
    assert httpx.get(f"{url}/api/object_info/NoSuchNode").json() == {}
    assert len(httpx.get(f"{url}/object_info").json()) == 496
    assert httpx.get(f"{url}/system_stats").json() == sample("system_stats.json")
    assert httpx.get(f"{url}/models").json() == sample("models.json")
    assert httpx.get(f"{url}/embeddings").json() == sample("embeddings.json")


def _png(comfy: ComfyUITestServer, graph: dict[str, Any]) -> list[bytes]:
    posted = httpx.post(f"{comfy.url}/prompt", json={"prompt": graph}).json()
    comfy.wait_idle()
    entry = comfy.history()[posted["prompt_id"]]
    return [
        httpx.get(f"{comfy.url}/view", params=image).content
        for output in entry["outputs"].values()
        for image in output.get("images", [])
    ]


def test_identical_graphs_give_identical_bytes_and_inputs_change_them(tmp_path: Path) -> None:
    with (
        ComfyUITestServer(tmp_path / "a", render_time_s=0) as one,
        ComfyUITestServer(tmp_path / "b", render_time_s=0, cache=False) as two,
    ):
        graph = basic_graph(seed=7, batch=2)
        first, second = _png(one, graph), _png(two, graph)
        assert first == second and len(first) == 2
        variants = [
            basic_graph(seed=8, batch=2),
            basic_graph(seed=7, batch=2, color=0x445566),
            basic_graph(seed=7, batch=2, width=65),
            basic_graph(seed=7, batch=2, height=47),
        ]
        digests = {hashlib.sha256(b"".join(first)).hexdigest()}
        for variant in variants:
            digests.add(hashlib.sha256(b"".join(_png(two, variant))).hexdigest())
        assert len(digests) == 1 + len(variants)
        assert len(_png(two, basic_graph(seed=7, batch=3))) == 3


def test_animated_outputs_are_real_multi_frame_files(comfy: ComfyUITestServer) -> None:
    graph = basic_graph(batch=6, seed=3)
    del graph["3"]
    graph["5"] = {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {
            "images": ["2", 0],
            "filename_prefix": "loop",
            "fps": 8.0,
            "lossless": False,
            "quality": 80,
            "method": "default",
        },
    }
    graph["6"] = {
        "class_type": "SaveAnimatedPNG",
        "inputs": {"images": ["2", 0], "filename_prefix": "loop", "fps": 8.0, "compress_level": 4},
    }
    webp, apng = _png(comfy, graph)
    for data, kind in ((webp, "WEBP"), (apng, "PNG")):
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == kind and image.n_frames == 6 and image.size == (64, 48)
    entry = next(iter(comfy.history().values()))
    assert entry["outputs"]["5"]["animated"] == [True]


def test_model_nodes_get_stand_ins_that_follow_the_seed(tmp_path: Path) -> None:
    choices = {"ckpt_name": ["sd15.safetensors"]}
    with ComfyUITestServer(tmp_path / "c", render_time_s=0, extra_choices=choices) as comfy:

        def keyframe(seed: int) -> dict[str, Any]:
            return {
                "1": {
                    "class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "sd15.safetensors"},
                },
                "2": {
                    "class_type": "CLIPTextEncode",
                    "inputs": {"text": "a fox", "clip": ["1", 1]},
                },
                "3": {
                    "class_type": "CLIPTextEncode",
                    "inputs": {"text": "blurry", "clip": ["1", 1]},
                },
                "4": {
                    "class_type": "EmptyLatentImage",
                    "inputs": {"width": 96, "height": 64, "batch_size": 1},
                },
                "5": {
                    "class_type": "KSampler",
                    "inputs": {
                        "model": ["1", 0],
                        "seed": seed,
                        "steps": 4,
                        "cfg": 7.0,
                        "sampler_name": "euler",
                        "scheduler": "normal",
                        "positive": ["2", 0],
                        "negative": ["3", 0],
                        "latent_image": ["4", 0],
                        "denoise": 1.0,
                    },
                },
                "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
                "7": {
                    "class_type": "SaveImage",
                    "inputs": {"images": ["6", 0], "filename_prefix": "key"},
                },
            }

        one, two, again = (
            _png(comfy, keyframe(1)),
            _png(comfy, keyframe(2)),
            _png(comfy, keyframe(1)),
        )
        assert one != two and one == again
        with Image.open(io.BytesIO(one[0])) as image:
            assert image.size == (96, 64)


def test_a_parallel_server_runs_prompts_side_by_side(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.3, parallel=2) as comfy:
        for color in (1, 2):
            httpx.post(f"{comfy.url}/prompt", json={"prompt": basic_graph(color=color)})
        comfy.wait_idle()
        assert comfy.stats.max_concurrent == 2 and comfy.stats.prompts_completed == 2
