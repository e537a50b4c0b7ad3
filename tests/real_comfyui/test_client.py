"""The studio's ComfyUI client against the real server: submit, follow, download, re-attach,
cancel a queued prompt, interrupt a running one, an image uploaded for LoadImage, and a
prompt that failed rendered anew once its cause is fixed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from blocks.comfyui import ComfyUICancelled, ComfyUIServer
from blocks.comfyui.models import PromptDone, PromptStarted
from tasks.rendering.comfyui import content_name
from tests.real_comfyui.peer import RealComfyUI


def _client(real_comfyui: RealComfyUI):
    return ComfyUIServer(base_url=real_comfyui.url, poll_interval_s=0.2).get_client()


def _invert(source: dict, prefix: str) -> dict:
    return {
        "1": source,
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def _canvas(color: int, size: int = 64, batch: int = 1) -> dict:
    inputs = {"width": size, "height": size, "batch_size": batch, "color": color}
    return {"class_type": "EmptyImage", "inputs": inputs}


def _slow(prefix: str) -> dict:
    """Seconds of CPU work with core nodes only: a big noisy batch, blurred hard."""
    return {
        "1": _canvas(0x336699, size=1024, batch=24),
        "2": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 10.0},
        },
        "3": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["2", 0], "blur_radius": 31, "sigma": 10.0},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def _id(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:10]}"


async def test_submit_follow_download_and_reattach(real_comfyui: RealComfyUI, tmp_path: Path):
    client = _client(real_comfyui)
    prompt_id = _id("follow")
    graph = _invert(_canvas(0x102030 + uuid.uuid4().int % 1000), prompt_id)
    events = []
    result = await client.render(graph, prompt_id, on_event=events.append)
    assert any(isinstance(e, PromptStarted) for e in events)
    assert isinstance(events[-1], PromptDone) and result.outputs
    files = await client.download_all(result, tmp_path)
    for file in files:
        served = httpx.get(
            f"{real_comfyui.url}/view",
            params={
                "filename": file.output.filename,
                "subfolder": file.output.subfolder,
                "type": file.output.type,
            },
            timeout=30,
        ).content
        assert (
            file.sha256
            == hashlib.sha256(served).hexdigest()
            == hashlib.sha256(file.path.read_bytes()).hexdigest()
        )

    # The same prompt id again (a retried task, a re-run flow): re-attached, not rendered.
    again = await client.submit(graph, prompt_id)
    assert again.reattached and again.state == "done"
    history = httpx.get(f"{real_comfyui.url}/history", timeout=30).json()
    assert sum(1 for pid in history if pid == prompt_id) == 1


async def test_cancel_dequeues_a_waiting_prompt_and_interrupts_a_running_one(
    real_comfyui: RealComfyUI,
):
    client = _client(real_comfyui)
    running, waiting = _id("slow"), _id("queued")
    await client.submit(_slow(running), running)
    await client.submit(_invert(_canvas(0x445566), waiting), waiting)
    for _ in range(200):  # until the slow one has started
        if (await client.lookup(running)).phase == "running":
            break
        await asyncio.sleep(0.1)
    assert await client.cancel(waiting) == "dequeued"
    assert (await client.lookup(waiting)).phase == "absent"
    # Several at once (a run's cancel): only the waiting ones, in one request, the running
    # one left for its interrupt.
    other = _id("queued")
    await client.submit(_invert(_canvas(0x556677), other), other)
    assert await client.dequeue([running, other, _id("unknown")]) == {other}
    assert (await client.lookup(other)).phase == "absent"
    assert (await client.lookup(running)).phase == "running"
    assert await client.cancel(running) == "interrupted"
    with pytest.raises(ComfyUICancelled):
        async for _ in client.follow(running):
            pass
    done = await client.lookup(running)
    assert done.phase == "done"
    messages = [m[0] for m in done.entry["status"]["messages"]]
    assert "execution_interrupted" in messages


async def test_an_uploaded_image_feeds_loadimage(real_comfyui: RealComfyUI, tmp_path: Path):
    source = tmp_path / "reference.png"
    Image.new("RGB", (40, 24), (30, 90, 200)).save(source)
    client = _client(real_comfyui)
    name = await client.upload_image(source, content_name(source))
    assert name == content_name(source)
    prompt_id = _id("loadimage")
    graph = _invert({"class_type": "LoadImage", "inputs": {"image": name}}, prompt_id)
    result = await client.render(graph, prompt_id)
    (file,) = await client.download_all(result, tmp_path / "out")
    pixels = np.asarray(Image.open(file.path).convert("RGB"))
    assert pixels.shape == (24, 40, 3)
    # Inverted in float32 and saved back to 8 bits: within one level of 255 - value.
    assert np.abs(pixels[0, 0].astype(int) - [225, 165, 55]).max() <= 1


async def test_a_prompt_that_failed_is_rendered_anew_once_its_cause_is_fixed(
    real_comfyui: RealComfyUI, tmp_path: Path
):
    """A studio's first week: a prompt fails while it runs (here LoadImage's file is broken;
    a missing model file fails the same way), the file is fixed, and the job runs again under
    the same prompt id. ComfyUI still holds the failed prompt: it is rendered anew, not
    re-attached to (which reported the old error on every re-run until a restart)."""
    from blocks.comfyui import ComfyUIExecutionError

    client = _client(real_comfyui)
    name = f"{_id('fixed-later')}.png"

    def upload(data: bytes) -> None:
        answer = httpx.post(
            f"{real_comfyui.url}/upload/image",
            files={"image": (name, data, "image/png")},
            data={"type": "input", "overwrite": "true"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    upload(b"not an image: a file copied half-way")
    prompt_id = _id("failed-first")
    graph = _invert({"class_type": "LoadImage", "inputs": {"image": name}}, prompt_id)
    with pytest.raises(ComfyUIExecutionError):
        await client.render(graph, prompt_id)

    source = tmp_path / "fixed.png"
    Image.new("RGB", (16, 8), (10, 20, 30)).save(source)
    upload(source.read_bytes())
    result = await client.render(graph, prompt_id)
    assert result.status == "success"
    (file,) = await client.download_all(result, tmp_path / "out")
    assert Image.open(file.path).size == (16, 8)
    entry = httpx.get(f"{real_comfyui.url}/history/{prompt_id}", timeout=30).json()[prompt_id]
    assert entry["status"]["status_str"] == "success"
