"""Face embeddings of the characters' reference images, computed once per face model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.scoring import ScoringModels
from db import jobs as db_jobs
from tasks.production import in_session


def embed_project_references(session, project_id: int, models: ScoringModels) -> str:
    """Embed every reference image of the project that has no embedding for this model yet."""
    from db.face_calibration import project_settings
    from tasks.scoring.face_embedder import (
        FaceModelUnavailable,
        load_face_embedder,
        to_rgb_array,
    )
    from tasks.scoring.faces import main_face

    models = models.for_project(project_settings(session, project_id))
    try:
        embedder = load_face_embedder(models)
    except FaceModelUnavailable as exc:
        return f"reference faces not embedded: {exc}"
    pending = db_jobs.references_without_embedding(session, project_id, embedder.name)
    stored, faceless = 0, []
    for ref in pending:
        face = main_face(embedder.detect_and_embed(to_rgb_array(ref.file)))
        if face is None:
            faceless.append(ref.file)
            continue
        db_jobs.store_face_embedding(
            session,
            ref.id,
            model_name=embedder.name,
            vector=face.embedding.tolist(),
            bbox=list(face.bbox),
            det_score=face.det_score,
        )
        stored += 1
    message = f"embedded {stored} reference image(s) with {embedder.name}"
    if faceless:
        message += f"; no face found in {len(faceless)}: {', '.join(faceless)}"
    # References may have changed since the last run (imported, removed): calibrate again.
    from tasks.face_calibration import calibrate_project

    session.flush()
    calibrated = calibrate_project(session, project_id, model_name=embedder.name)
    thresholds = [
        f"{c.character} {'default' if c.threshold is None else f'{c.threshold:.2f}'}"
        for c in calibrated
    ]
    if thresholds:
        message += f"; face thresholds: {', '.join(thresholds)}"
    return message


@task(name="embed-references", cache_policy=NO_CACHE)
async def embed_references(project_id: int, models: ScoringModels) -> str:
    def run(session) -> str:
        return embed_project_references(session, project_id, models)

    message = await in_session(run)
    get_run_logger().info(message)
    return message


class _Embedding:
    """The run's `embed-references`, started by its first judge (or at the run's end when
    nothing was judged), in the run's own context so that the Prefect UI lists it under the
    run, not under that judge."""

    def __init__(self, project_id: int, models: ScoringModels) -> None:
        self.wanted = asyncio.Event()
        self.result = asyncio.ensure_future(self._embed(project_id, models))

    async def _embed(self, project_id: int, models: ScoringModels) -> str:
        await self.wanted.wait()
        return await embed_references(project_id, models)


_embedding: ContextVar[_Embedding | None] = ContextVar("references_embedding", default=None)


@contextlib.asynccontextmanager
async def references_embedded_meanwhile(
    project_id: int, models: ScoringModels
) -> AsyncIterator[None]:
    """Embedding the reference faces loads the face model (seconds of imports and files, and
    the GIL while they load) that only judging needs: it waited before the episode's first
    prompt, and then delayed it beside the first cut runs. So the run's first judge starts it
    and every judge waits for it (`references_embedded`), while the renders go on; its error,
    if any, is the run's when the block ends."""
    embedding = _Embedding(project_id, models)
    token = _embedding.set(embedding)
    try:
        yield
        embedding.wanted.set()  # references imported since stay calibrated
        await embedding.result
    finally:
        _embedding.reset(token)
        if not embedding.result.done():  # the run failed or was cancelled first
            embedding.result.cancel()
            await asyncio.gather(embedding.result, return_exceptions=True)


async def references_embedded() -> None:
    """Wait until the run's reference faces are embedded and calibrated (at once outside a run
    that embeds them): face similarity compares with those."""
    if (embedding := _embedding.get()) is not None:
        embedding.wanted.set()
        await asyncio.shield(embedding.result)


__all__ = [
    "embed_project_references",
    "embed_references",
    "references_embedded",
    "references_embedded_meanwhile",
]
