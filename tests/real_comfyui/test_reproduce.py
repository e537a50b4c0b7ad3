"""A reproduction on the real ComfyUI of a job whose graph reads an uploaded image, after the
server's input folder lost it (as a restart on a fresh disk does): uploaded again, rendered."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from blocks.comfyui import find_server
from db.engine import session_scope
from db.models import Job
from flows.reproduce import reproduce_job
from tasks.rendering.comfyui import content_name, upload_images
from tests.flows import conftest as flow_fixtures
from tests.flows.test_reproduction_uploads import loadimage_graph, render_original
from tests.real_comfyui.peer import RealComfyUI

small_production = flow_fixtures.small_production


@pytest.mark.usefixtures("prefect_harness")
async def test_a_reproduction_uploads_its_image_again_to_the_real_server(
    real_comfyui: RealComfyUI, small_production, tmp_path
):
    if real_comfyui.base is None:
        pytest.skip("wiping the input folder needs the peer ComfyUI, not COMFYUI_URL")
    reference = tmp_path / "reference.png"
    colour = (123, 45, 67)
    Image.new("RGB", (32, 24), colour).save(reference)
    name = content_name(reference)
    # The session's ComfyUI keeps the history of earlier tests, whose databases numbered their
    # jobs from 1 too: prompt ids include each database's own id, so job 2 here is not theirs.
    job_id = await render_original(
        real_comfyui.url, loadimage_graph(name), {name: reference}, tmp_path
    )
    # Another prompt in between: ComfyUI's cache holds the last prompt's outputs only.
    spacer = tmp_path / "spacer.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(spacer)
    await upload_images([real_comfyui.url], {content_name(spacer): spacer})
    client = (await find_server(real_comfyui.url)).get_client()
    await client.render(loadimage_graph(content_name(spacer)), f"spacer-{uuid.uuid4().hex[:8]}")

    (real_comfyui.base / "input" / name).unlink()
    report = await reproduce_job(job_id)
    assert (real_comfyui.base / "input" / name).read_bytes() == reference.read_bytes()
    with session_scope() as s:
        copy = s.scalar(select(Job).where(Job.parent_job_id == job_id))
        output = copy.artifacts[0].uri
    pixels = np.asarray(Image.open(output).convert("RGB"))
    assert pixels.shape == (24, 32, 3) and tuple(pixels[0, 0]) == colour, (output, report)
    print(f"\nreal reproduction: {report.summary().splitlines()[0]}")
