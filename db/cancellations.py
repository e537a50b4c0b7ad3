"""A person's cancel of an episode's renders (one scene's, one cut's), and the look-ups a run
makes before it submits a cut: cancelled since this run started?"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from db.models import Cut, Job, RenderCancellation, Scene
from db.queries import get_episode
from db.vocabulary import JobStatus


def database_now(session: Session) -> datetime:
    """The database's clock: a run's start and a cancellation are told apart by it alone."""
    return session.scalar(select(func.now()))


def record_cancellation(
    session: Session,
    project_slug: str,
    episode: int,
    *,
    scene: int | None = None,
    cut: int | None = None,
    reason: str,
) -> list[RenderCancellation]:
    """Cancel the episode (a scene, a cut of it) for every run already started; LookupError
    naming a scene or cut the episode does not have."""
    found = get_episode(session, project_slug, episode)
    if scene is None and cut is None:
        rows = [RenderCancellation(episode_id=found.id, reason=reason)]
    else:
        scenes = [s for s in found.scenes if scene is None or s.number == scene]
        if scene is not None and not scenes:
            known = ", ".join(str(s.number) for s in found.scenes) or "none"
            raise LookupError(
                f"{project_slug} episode {episode} has no scene {scene} (scenes: {known})"
            )
        if cut is None:
            rows = [RenderCancellation(episode_id=found.id, scene_id=scenes[0].id, reason=reason)]
        else:
            cuts = [(s, c) for s in scenes for c in s.cuts if c.number == cut]
            if not cuts:
                where = f"episode {episode} scene {scene}" if scene else f"episode {episode}"
                raise LookupError(f"{project_slug} {where} has no cut {cut}")
            rows = [
                RenderCancellation(episode_id=found.id, scene_id=s.id, cut_id=c.id, reason=reason)
                for s, c in cuts
            ]
    session.add_all(rows)
    session.flush()
    return rows


def cut_cancelled_since(session: Session, cut_id: int, since: datetime) -> str | None:
    """The reason of a cancellation covering the cut made at or after ``since`` (a run's start),
    or None: the cut may be rendered. One statement: every cut asks before it renders."""
    return session.scalar(
        select(RenderCancellation.reason)
        .join(Scene, Scene.episode_id == RenderCancellation.episode_id)
        .join(Cut, Cut.scene_id == Scene.id)
        .where(
            Cut.id == cut_id,
            RenderCancellation.requested_at >= since,
            or_(RenderCancellation.scene_id.is_(None), RenderCancellation.scene_id == Scene.id),
            or_(RenderCancellation.cut_id.is_(None), RenderCancellation.cut_id == Cut.id),
        )
        .order_by(RenderCancellation.requested_at)
        .limit(1)
    )


def job_cancelled_since(session: Session, job_id: int, since: datetime | None) -> str | None:
    """Why the job must not be submitted (it was cancelled, or a cancellation since the run's
    start covers its cut), or None."""
    found = session.execute(
        select(Job.status, Job.error, Job.cut_id).where(Job.id == job_id)
    ).one_or_none()
    if found is None:
        raise LookupError(f"no job with id {job_id}")
    status, error, cut_id = found
    if status is JobStatus.CANCELLED:
        return error or "cancelled"
    if since is None or cut_id is None:
        return None
    return cut_cancelled_since(session, cut_id, since)
