"""A reproduction of a job whose graph reads images uploads them again before it is
submitted: to another server, and to the same one after its input folder was wiped."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits, find_server
from db.engine import session_scope
from db.jobs import get_or_create_job, record_render
from db.models import Cut, Job, JobKind, JobStatus, Phase, Project
from db.renders import RenderOutput, RenderResult
from flows.reproduce import reproduce_job
from tasks.rendering.comfyui import content_name, upload_images
from tests.comfyui_server import ComfyUITestServer
from workflows.graph import graph_sha256


async def _register(server: ComfyUITestServer) -> str:
    name = f"comfy-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url=server.url, slots=1, concurrency_limit_name=name)
    await block.save(name, overwrite=True)
    await ensure_concurrency_limits([block])
    return name


def _pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def loadimage_graph(name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "r"}},
    }


async def render_original(
    server_name: str, graph: dict, uploads: dict[str, Path], tmp_path: Path
) -> int:
    """A job rendered on that server as a cut's is (its images uploaded, then the graph) and
    stored as the pipeline stores it (graph, outputs, uploads); returns its id."""
    await upload_images([server_name], uploads)
    server = await find_server(server_name)
    client = server.get_client()
    result = await client.render(graph, f"original-{uuid.uuid4().hex[:8]}")
    (file,) = await client.download_all(result, tmp_path / "original")
    with session_scope() as s:
        project_id = s.scalar(select(Project.id))
        cut_id = s.scalar(select(Cut.id).order_by(Cut.id).limit(1))
        job, _ = get_or_create_job(
            s, project_id=project_id, phase=Phase.GENERATION, kind=JobKind.KEYFRAME,
            attempt=1, cut_id=cut_id,
        )  # fmt: skip
        record_render(
            s,
            job.id,
            RenderResult(
                renderer="comfyui",
                server=server.base_url,
                outputs=[
                    RenderOutput(
                        path=str(file.path),
                        sha256=file.sha256,
                        mime="image/png",
                        size_bytes=file.path.stat().st_size,
                    )
                ],
                workflow=graph,
                workflow_sha256=graph_sha256(graph),
                params={
                    "uploads": [{"name": n, "source": str(p)} for n, p in sorted(uploads.items())]
                },
            ),
        )
        job.status, job.comfyui_server = JobStatus.PASSED, server.base_url
        return job.id


async def test_a_reproduction_uploads_its_images_again(small_production, prefect_harness, tmp_path):
    reference = tmp_path / "mio-front.png"
    Image.new("RGB", (32, 24), (40, 80, 160)).save(reference)
    name = content_name(reference)
    graph = loadimage_graph(name)
    with (
        ComfyUITestServer(tmp_path / "a", render_time_s=0.05) as a,
        ComfyUITestServer(tmp_path / "b", render_time_s=0.05) as b,
    ):
        block_a, block_b = await _register(a), await _register(b)
        job_id = await render_original(block_a, graph, {name: reference}, tmp_path)
        assert b.stats.uploads == 0

        # Another server, which never had the image: uploaded, then LoadImage reads it.
        report = await reproduce_job(job_id, comfyui_servers=[block_b])
        assert b.stats.uploads == 1
        assert (b.root / "input" / name).read_bytes() == reference.read_bytes()
        with session_scope() as s:
            copy = s.scalar(select(Job).where(Job.parent_job_id == job_id).order_by(Job.id))
            output = copy.artifacts[0].uri
            assert copy.params.extra["uploads"] == [{"name": name, "source": str(reference)}]
        assert (_pixels(output) == _pixels(reference)).all()
        assert report.comparisons[0].max_abs_diff in (None, 0)

        # The recorded server, whose input folder was wiped (a restart on a fresh disk) after
        # this very process uploaded there: asked again, sent again.
        (a.root / "input" / name).unlink()
        await reproduce_job(job_id)
        assert a.stats.uploads == 2 and (a.root / "input" / name).is_file()

        # The source image is gone: one clear error, the reproduction job ends `error`.
        reference.unlink()
        with pytest.raises(FileNotFoundError, match="which is gone"):
            await reproduce_job(job_id, comfyui_servers=[block_b])
        with session_scope() as s:
            failed = s.scalar(select(Job).order_by(Job.id.desc()).limit(1))
            assert failed.status is JobStatus.ERROR and f"image {name}" in failed.error
