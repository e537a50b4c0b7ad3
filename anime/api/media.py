"""Pictures where people look: stored outputs, character references and episode reels over
HTTP, by id.

Files are found by the id of their database row, never by a path a client sends, so nothing
outside what the studio stored can be read. Thumbnails (JPEG, 320 px wide at most; the first
frame of a clip is its poster) are made once and cached by content hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path as FsPath

import anyio
from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, RedirectResponse, Response

from db import reels as db_reels
from db import review as db_review
from db.image_files import ImageFileError, load_image_file
from tasks.production import in_session
from tasks.reel.export import ReelSummary

router = APIRouter(prefix="/api/anime", tags=["media"])

THUMB_WIDTH = 320


def thumbnail_dir() -> FsPath:
    return FsPath(
        os.environ.get("ANIME_THUMBNAIL_DIR") or FsPath(tempfile.gettempdir()) / "anime-thumbs"
    )


def make_thumbnail(source: FsPath, width: int = THUMB_WIDTH) -> bytes:
    """A JPEG of the image, or of a clip's first frame, at most ``width`` pixels wide."""
    frame = load_image_file(source, "RGB")  # bounded: a header may claim a billion pixels
    if frame.width > width:
        frame = frame.resize((width, max(1, round(frame.height * width / frame.width))))
    buf = io.BytesIO()
    frame.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _cached_thumbnail(media: db_review.MediaFile, width: int) -> bytes:
    source = FsPath(media.path)
    if not source.is_file():
        raise LookupError(f"the stored file is missing on this machine: {source.name}")
    stat = source.stat()
    key = media.sha256 or hashlib.sha256(f"{source}:{stat.st_mtime_ns}".encode()).hexdigest()
    cached = thumbnail_dir() / f"{key}-{width}.jpg"
    if cached.is_file():
        return cached.read_bytes()
    data = make_thumbnail(source, width)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # A partial file of its own per request (requests run in threads of one process, and
    # files with equal content share a key): the rename is atomic, so a concurrent request
    # never reads half a file, nor loses the file it wrote to another's rename.
    with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".part", delete=False) as out:
        out.write(data)
    FsPath(out.name).replace(cached)
    return data


async def _thumbnail_response(media: db_review.MediaFile, width: int) -> Response:
    try:
        data = await anyio.to_thread.run_sync(_cached_thumbnail, media, width)
    except (OSError, ImageFileError):
        # No path and no decoder message (Pillow's name the file): a 404 says what, not where.
        raise LookupError("the stored file cannot be read as a picture") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


Width = Query(THUMB_WIDTH, ge=16, le=1024, description="largest width in pixels")


@router.get("/artifacts/{artifact_id}/thumbnail", responses={404: {}})
async def artifact_thumbnail(artifact_id: int = Path(ge=1), width: int = Width) -> Response:
    """A JPEG thumbnail of a stored image, or the poster frame of a stored clip."""
    return await _thumbnail_response(await in_session(db_review.artifact_file, artifact_id), width)


@router.get("/artifacts/{artifact_id}/file", responses={404: {}})
async def artifact_file(artifact_id: int = Path(ge=1)) -> FileResponse:
    """The stored image or clip itself, with its stored MIME type."""
    media = await in_session(db_review.artifact_file, artifact_id)
    if not FsPath(media.path).is_file():
        raise LookupError(f"artifact {artifact_id}: the stored file is missing on this machine")
    return FileResponse(media.path, media_type=media.mime)


@router.get("/jobs/{job_id}/thumbnail", responses={404: {}})
async def job_thumbnail(job_id: int = Path(ge=1), width: int = Width) -> RedirectResponse:
    """The thumbnail of a job's first output (what run reports link to)."""
    artifact_id = await in_session(db_review.job_output_id, job_id)
    return RedirectResponse(f"/api/anime/artifacts/{artifact_id}/thumbnail?width={width}")


@router.get("/references/{reference_id}/thumbnail", responses={404: {}})
async def reference_thumbnail(reference_id: int = Path(ge=1), width: int = Width) -> Response:
    """A JPEG thumbnail of a character's reference image."""
    reference = await in_session(db_review.reference_file, reference_id)
    return await _thumbnail_response(reference, width)


# --- reels -----------------------------------------------------------------------------------


def _reel_summary(session, reel_id: int) -> ReelSummary:
    reel = db_reels.get_reel(session, reel_id)
    episode = reel.episode
    return ReelSummary.of(reel, f"{episode.project.slug} episode {episode.number}")


def _latest_reel_id(session, episode_id: int) -> int:
    reel = db_reels.latest_reel(session, episode_id)
    if reel is None:
        raise LookupError(
            f"episode {episode_id} has no reel yet: a render-episode run or "
            "`anime episode export PROJECT EPISODE` builds one"
        )
    return reel.id


def _stored(path: str | None, what: str) -> str:
    if not path or not FsPath(path).is_file():
        raise LookupError(f"{what}: the stored file is missing on this machine")
    return path


@router.get("/episodes/{episode_id}/reel", responses={404: {}})
async def episode_reel(episode_id: int = Path(ge=1)) -> ReelSummary:
    """The episode's newest reel: file, sha256, size, duration and what each cut shows."""
    reel_id = await in_session(_latest_reel_id, episode_id)
    return await in_session(_reel_summary, reel_id)


@router.get("/reels/{reel_id}", responses={404: {}})
async def reel(reel_id: int = Path(ge=1)) -> ReelSummary:
    """A stored reel and its recipe: per cut, the source, the job and artifact behind it."""
    return await in_session(_reel_summary, reel_id)


@router.get("/reels/{reel_id}/file", responses={404: {}})
async def reel_file(reel_id: int = Path(ge=1)) -> FileResponse:
    """The reel's MP4 (H.264); range requests are answered, so players can seek."""
    found = await in_session(_reel_summary, reel_id)
    return FileResponse(_stored(found.path, f"reel {reel_id}"), media_type="video/mp4")


@router.get("/reels/{reel_id}/contact-sheet", responses={404: {}})
async def reel_contact_sheet(reel_id: int = Path(ge=1)) -> FileResponse:
    """The reel's contact sheet (PNG): one row per scene."""
    found = await in_session(_reel_summary, reel_id)
    path = _stored(found.contact_sheet, f"reel {reel_id}'s contact sheet")
    return FileResponse(path, media_type="image/png")
