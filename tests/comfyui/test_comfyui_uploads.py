"""Images reach the server: uploaded through /upload/image under a content-addressed name,
once per server, named in the graph, recorded with the job; LoadImage renders them."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blocks.comfyui import ComfyUIServer
from blocks.comfyui.client import _uploaded
from tasks.rendering.comfyui import content_name, template_inputs, upload_images
from tasks.rendering.request import BoardFigure, RenderRequest, Storyboard
from tests.comfyui.helpers import block_for
from tests.comfyui_server import ComfyUITestServer


def _picture(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (32, 24), colour).save(path)
    return path


def _request(tmp_path: Path, template: str, board: Storyboard, **parameters) -> RenderRequest:
    return RenderRequest(
        renderer="comfyui",
        job_id=1,
        attempt=1,
        phase="generation",
        label="ep01-sc01-cut01",
        name="cut",
        out_dir=str(tmp_path / "out"),
        seed=3,
        template=template,
        parameters={"positive": "1girl", **parameters},
        board=board,
    )


def test_templates_get_images_by_content_addressed_name(tmp_path):
    face = _picture(tmp_path / "aki-front.png", (200, 150, 120))
    keyframe = _picture(tmp_path / "keyframe.png", (10, 20, 30))
    pose = _picture(tmp_path / "pose.png", (0, 0, 0))
    board = Storyboard(
        cast=[BoardFigure(slug="aki", reference_images=[str(face)])], source_image=str(keyframe)
    )
    control = {"name": "control_v11p_sd15_openpose.pth", "image": str(pose)}
    params, _, uploads = template_inputs(_request(tmp_path, "keyframe", board, controlnet=control))
    assert params["reference_image"] == content_name(face)  # FaceID sees the character
    assert params["controlnet"]["image"] == content_name(pose)
    assert uploads == {content_name(face): face, content_name(pose): pose}
    assert content_name(face).startswith("anime-") and content_name(face).endswith(".png")

    params, _, uploads = template_inputs(_request(tmp_path, "svd_img2vid", board))
    assert params["init_image"] == content_name(keyframe)  # the approved keyframe is SVD's input
    assert uploads == {content_name(keyframe): keyframe}
    _picture(tmp_path / "copy.png", (10, 20, 30))
    assert content_name(tmp_path / "copy.png") == content_name(keyframe)  # by bytes, not name


@pytest.mark.usefixtures("prefect_harness")
async def test_an_image_is_uploaded_once_per_server_and_loadimage_renders_it(tmp_path):
    image = _picture(tmp_path / "ref.png", (40, 80, 160))
    name = content_name(image)
    with (
        ComfyUITestServer(tmp_path / "a") as a,
        ComfyUITestServer(tmp_path / "b") as b,
    ):
        blocks = []
        for comfy in (a, b):
            block_name = f"up-{uuid.uuid4().hex[:8]}"
            await block_for(comfy, concurrency_limit_name=block_name).asave(block_name)
            blocks.append(block_name)
        held = await upload_images(blocks, {name: image})
        assert held == {a.url: {name}, b.url: {name}}
        await upload_images(blocks, {name: image})  # again: nothing sent twice
        assert (a.stats.uploads, b.stats.uploads) == (1, 1)
        assert (a.root / "input" / name).read_bytes() == image.read_bytes()

        _uploaded.clear()  # another process: the server's own folder says it is there
        await upload_images(blocks[:1], {name: image})
        assert a.stats.uploads == 1

        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "u"},
            },
        }
        client = (await ComfyUIServer.aload(blocks[0])).get_client()
        result = await client.render(graph, f"upload-{uuid.uuid4().hex[:8]}")
        files = await client.download_all(result, tmp_path / "out")
        rendered = np.asarray(Image.open(files[0].path).convert("RGB"))
        assert rendered.shape == (24, 32, 3) and tuple(rendered[0, 0]) == (40, 80, 160)
