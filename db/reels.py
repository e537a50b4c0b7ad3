"""What each cut shows in the episode's reel, and the reels stored for an episode.

A cut shows, in this order of preference: its approved animation; its approved keyframe, held
for the cut's duration; its best attempt (the one flagged for review, else the latest with an
output), marked on screen as not approved; or nothing, and the reel shows a slate instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from db.models import Cut, Episode, GenerationParams, Job, JobStatus, Phase, Reel, Scene
from db.review import cut_label

DEFAULT_SIZE = (640, 360)


@dataclass
class Footage:
    """A stored output a cut can show: which job made it, where it is, at what fps."""

    job_id: int
    artifact_id: int
    path: str
    sha256: str
    kind: str  # image | animation
    phase: str
    status: str
    fps: float
    width: int | None
    height: int | None


@dataclass
class ReelCut:
    cut_id: int
    label: str
    scene: int
    scene_title: str
    description: str
    frames: int  # the cut's own timing: frames at fps
    fps: int
    source: str  # animation | keyframe | attempt | slate
    status: str  # what a person reads on the slate or the "not approved" mark
    footage: Footage | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def _footage(job: Job, cut: Cut) -> Footage | None:
    if not job.artifacts:
        return None
    art = job.artifacts[0]
    fps = (job.params.fps if job.params and job.params.fps else None) or cut.fps
    return Footage(
        job_id=job.id,
        artifact_id=art.id,
        path=art.uri,
        sha256=art.sha256,
        kind=art.kind,
        phase=job.phase.value,
        status=job.status.value,
        fps=float(fps),
        width=art.width,
        height=art.height,
    )


def _approved(jobs: list[Job], cut: Cut) -> Footage | None:
    job = next((j for j in jobs if j.status is JobStatus.PASSED and j.artifacts), None)
    return _footage(job, cut) if job else None


def _best_attempt(jobs: list[Job], cut: Cut) -> Footage | None:
    with_output = [j for j in jobs if j.artifacts]
    if not with_output:
        return None
    flagged = next((j for j in with_output if j.status is JobStatus.NEEDS_REVIEW), None)
    return _footage(flagged or with_output[-1], cut)


def _status(animations: list[Job], keyframes: list[Job]) -> str:
    """The cut's state in words, from its newest attempt in the furthest phase."""
    for phase, jobs in (("animation", animations), ("keyframe", keyframes)):
        if jobs:
            last = jobs[-1]
            text = f"{phase} attempt {last.attempt}: {last.status.value.replace('_', ' ')}"
            if last.error:
                text += f" ({last.error.splitlines()[0][:120]})"
            return text
    return "not rendered yet"


def _attempts(session: Session, cut_ids: list[int]) -> dict[tuple[int, Phase], list[Job]]:
    """The cuts' keyframe and animation attempts in order, with their outputs and their fps,
    in three queries whatever the number of cuts: two queries and their lazy loads per cut
    were some 1,200 round trips at the end of a 300-cut run. Of the parameters only the fps
    is read: the rest (the submitted graph, the environment) is most of a job's stored bytes,
    and the reel reads every cut as it is stored."""
    jobs: dict[tuple[int, Phase], list[Job]] = defaultdict(list)
    for job in session.scalars(
        select(Job)
        .where(
            Job.cut_id.in_(cut_ids),
            Job.phase.in_([Phase.ANIMATION, Phase.GENERATION]),
            Job.parent_job_id.is_(None),
        )
        .order_by(Job.cut_id, Job.attempt)
        .options(
            selectinload(Job.artifacts),
            selectinload(Job.params).load_only(GenerationParams.fps),
        )
    ):
        jobs[(job.cut_id, job.phase)].append(job)
    return jobs


def reel_cut(session: Session, cut: Cut, *, only_approved: bool = False) -> ReelCut:
    jobs = _attempts(session, [cut.id])
    return _reel_cut(
        cut,
        jobs[(cut.id, Phase.ANIMATION)],
        jobs[(cut.id, Phase.GENERATION)],
        only_approved=only_approved,
    )


def reel_cut_by_id(session: Session, cut_id: int) -> ReelCut | None:
    """What the cut shows in the reel (None: no such cut), its scene and episode read with
    it: the reel's encoding ahead reads one per finished cut."""
    cut = session.get(Cut, cut_id, options=[joinedload(Cut.scene).joinedload(Scene.episode)])
    return None if cut is None else reel_cut(session, cut)


def _reel_cut(
    cut: Cut, animations: list[Job], keyframes: list[Job], *, only_approved: bool
) -> ReelCut:
    view = ReelCut(
        cut_id=cut.id,
        label=cut_label(cut),
        scene=cut.scene.number,
        scene_title=cut.scene.title,
        description=cut.description,
        frames=cut.frames,
        fps=cut.fps,
        source="slate",
        status=_status(animations, keyframes),
    )
    if found := _approved(animations, cut):
        view.source, view.footage, view.status = "animation", found, "approved animation"
    elif found := _approved(keyframes, cut):
        view.source, view.footage, view.status = "keyframe", found, "approved keyframe"
    elif not only_approved and (
        found := _best_attempt(animations, cut) or _best_attempt(keyframes, cut)
    ):
        what = "animation" if found.phase == Phase.ANIMATION.value else "keyframe"
        view.source, view.footage = "attempt", found
        view.status = f"{what} job {found.job_id}, {found.status.replace('_', ' ')}"
    return view


def reel_cuts(session: Session, episode_id: int, *, only_approved: bool = False) -> list[ReelCut]:
    """The episode's cuts in order (scene, cut), each with what it shows."""
    cuts = list(
        session.scalars(
            select(Cut)
            .join(Scene)
            .where(Scene.episode_id == episode_id)
            .order_by(Scene.number, Cut.number)
            .options(selectinload(Cut.scene).selectinload(Scene.episode))
        )
    )
    jobs = _attempts(session, [cut.id for cut in cuts])
    return [
        _reel_cut(
            cut,
            jobs[(cut.id, Phase.ANIMATION)],
            jobs[(cut.id, Phase.GENERATION)],
            only_approved=only_approved,
        )
        for cut in cuts
    ]


@dataclass
class ReelPlan:
    """Everything a reel is built from: read in one transaction, encoded outside it."""

    project_id: int
    project: str
    episode_id: int
    episode: int
    title: str
    fps: int
    width: int
    height: int
    only_approved: bool
    cuts: list[ReelCut]
    # Where the frame size came from: the project's `reel` settings, the first cut's output,
    # or the default (nothing rendered yet, so the first output to come will decide it).
    sized_by: str = "settings"


def _even(n: int) -> int:
    return max(2, n - n % 2)  # yuv420p needs even sides


def frame_size(width: int, height: int) -> tuple[int, int]:
    """A reel's frame size for footage of this size: even sides, as yuv420p needs."""
    return _even(int(width)), _even(int(height))


def reel_plan(
    session: Session, episode_id: int, *, fps: int | None = None, only_approved: bool = False
) -> ReelPlan:
    """The episode's fps is ``fps``, else the project's ``reel.fps`` setting, else the fps most
    of its cuts have; the frame size is the project's ``reel`` size, else the first output's."""
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise LookupError(f"no episode with id {episode_id}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps: {fps} is not a frame rate (give a whole number above 0)")
    cuts = reel_cuts(session, episode_id, only_approved=only_approved)
    settings: dict[str, Any] = dict((episode.project.settings or {}).get("reel") or {})
    if fps is None:
        fps = settings.get("fps")
    if fps is None:
        rates = Counter(c.fps for c in cuts)
        fps = max(rates, key=lambda r: (rates[r], r)) if rates else 24
    first = next((c.footage for c in cuts if c.footage and c.footage.width), None)
    width = settings.get("width") or (first.width if first else DEFAULT_SIZE[0])
    height = settings.get("height") or (first.height if first else DEFAULT_SIZE[1])
    sized_by = "settings" if settings.get("width") else "footage" if first else "default"
    width, height = frame_size(width, height)
    return ReelPlan(
        project_id=episode.project_id,
        project=episode.project.slug,
        episode_id=episode.id,
        episode=episode.number,
        title=episode.title,
        fps=int(fps),
        width=width,
        height=height,
        only_approved=only_approved,
        cuts=cuts,
        sized_by=sized_by,
    )


def store_reel(session: Session, **fields: Any) -> Reel:
    """The reel row for this content: a rebuild with nothing new finds the row it made before."""
    found = session.scalar(
        select(Reel).where(
            Reel.episode_id == fields["episode_id"], Reel.sha256 == fields["sha256"]
        )
    )
    if found is not None:
        return found
    reel = Reel(**fields)
    session.add(reel)
    session.flush()
    return reel


def get_reel(session: Session, reel_id: int) -> Reel:
    reel = session.get(Reel, reel_id)
    if reel is None:
        raise LookupError(f"no reel with id {reel_id}")
    return reel


def latest_reel(session: Session, episode_id: int) -> Reel | None:
    return session.scalar(
        select(Reel)
        .where(Reel.episode_id == episode_id)
        .order_by(Reel.created_at.desc(), Reel.id.desc())
        .limit(1)
    )
