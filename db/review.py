"""People's decisions on cut outputs, and what a reviewer needs to see to make them.

A decision overrules the automatic verdict of the attempt that speaks for a cut in a phase:
approved -> the job is PASSED (re-runs skip the cut, the gate counts it as passed); rejected ->
the job is FAILED and the next run renders the cut again with a fresh attempt budget, starting
at the seed after the cut's last attempt. Every decision is kept with the scores it overruled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.api_queries import ScoreLine
from db.briefs import look_references
from db.jobs import cut_jobs, get_job
from db.looks import LookChooser, cut_cast_looks
from db.media_paths import contained
from db.models import (
    Artifact,
    CharacterReference,
    Cut,
    Episode,
    Job,
    JobStatus,
    Phase,
    ReviewDecision,
    ReviewOutcome,
    Scene,
    Verdict,
)

REVIEWED_PHASES = (Phase.GENERATION, Phase.ANIMATION)


def cut_label(cut: Cut) -> str:
    scene = cut.scene
    return f"E{scene.episode.number:02d}S{scene.number:02d}C{cut.number:02d}"


def speaking_job(session: Session, cut_id: int, phase: Phase) -> Job:
    """The attempt that speaks for the cut: the flagged one, else the passed one, else the
    latest judged one."""
    jobs = [j for j in cut_jobs(session, cut_id, phase) if j.verdict is not None]
    for status in (JobStatus.NEEDS_REVIEW, JobStatus.PASSED):
        found = next((j for j in jobs if j.status is status), None)
        if found is not None:
            return found
    if not jobs:
        raise LookupError(f"cut {cut_id} has no judged {phase.value} attempt to review")
    return jobs[-1]


def _score_lines(job: Job) -> list[dict[str, Any]]:
    return [
        {
            "metric": s.metric,
            "subject": s.subject,
            "value": s.value,
            "threshold": s.threshold,
            "comparator": s.comparator,
            "verdict": s.verdict.value,
        }
        for s in job.scores
    ]


def decide(
    session: Session,
    *,
    cut_id: int,
    phase: Phase,
    outcome: ReviewOutcome,
    reviewer: str,
    comment: str = "",
    source: str = "api",
    job_id: int | None = None,
) -> ReviewDecision:
    """Store a person's decision on the cut's speaking attempt (or ``job_id``) and apply it."""
    phase, outcome = Phase(phase), ReviewOutcome(outcome)
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("reviewer: say who decides (a name), it is stored with the decision")
    if phase not in REVIEWED_PHASES:
        raise ValueError(f"phase: cuts are reviewed in generation or animation, not {phase}")
    if session.get(Cut, cut_id) is None:
        raise LookupError(f"no cut with id {cut_id}")
    if job_id is None:
        job = speaking_job(session, cut_id, phase)
    else:
        job = get_job(session, job_id)
        if job.cut_id != cut_id or job.phase is not phase:
            raise ValueError(f"job {job_id} is not a {phase.value} attempt of cut {cut_id}")
    attempts = cut_jobs(session, cut_id, phase)
    decision = ReviewDecision(
        job_id=job.id,
        cut_id=cut_id,
        phase=phase,
        outcome=outcome,
        reviewer=reviewer,
        comment=comment.strip(),
        source=source,
        previous_status=job.status,
        previous_verdict=job.verdict,
        overruled=_score_lines(job),
        last_attempt=max(j.attempt for j in attempts),
    )
    session.add(decision)
    if outcome is ReviewOutcome.APPROVED:
        for other in attempts:
            if other.id != job.id and other.status in (JobStatus.NEEDS_REVIEW, JobStatus.PASSED):
                other.status = JobStatus.FAILED  # one attempt speaks for the cut
        job.status, job.verdict = JobStatus.PASSED, Verdict.PASSED
    else:
        job.status, job.verdict = JobStatus.FAILED, Verdict.FAILED
    note = f"{outcome.value} by {reviewer}" + (f": {decision.comment}" if decision.comment else "")
    kept = [
        line
        for line in job.explanation.splitlines()
        if not line.startswith(("approved by ", "rejected by "))
    ]
    job.explanation = "\n".join([note, *kept]).strip()
    session.flush()
    return decision


def latest_decisions(session: Session, job_ids: list[int]) -> dict[int, ReviewDecision]:
    """The newest decision per job (later decisions replace earlier ones)."""
    found: dict[int, ReviewDecision] = {}
    if not job_ids:
        return found
    rows = session.scalars(
        select(ReviewDecision)
        .where(ReviewDecision.job_id.in_(job_ids))
        .order_by(ReviewDecision.decided_at, ReviewDecision.id)
    )
    for row in rows:
        found[row.job_id] = row
    return found


def fresh_from(session: Session, cut_id: int, phase: Phase) -> int:
    """The first attempt number of the cut's current budget: 1, or the attempt after the cut's
    last attempt when a person's newest decision on it is a rejection."""
    latest = session.scalar(
        select(ReviewDecision)
        .where(ReviewDecision.cut_id == cut_id, ReviewDecision.phase == phase)
        .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc())
        .limit(1)
    )
    if latest is None or latest.outcome is not ReviewOutcome.REJECTED:
        return 1
    return latest.last_attempt + 1


# --- what the review page and the CLI show ---------------------------------------------------


@dataclass
class MediaFile:
    path: str
    mime: str
    kind: str
    sha256: str | None


def artifact_file(session: Session, artifact_id: int) -> MediaFile:
    art = session.get(Artifact, artifact_id)
    if art is None:
        raise LookupError(f"no artifact with id {artifact_id}")
    return MediaFile(path=art.uri, mime=art.mime, kind=art.kind, sha256=art.sha256)


def job_output_id(session: Session, job_id: int) -> int:
    get_job(session, job_id)
    found = session.scalar(
        select(Artifact.id).where(Artifact.job_id == job_id).order_by(Artifact.id).limit(1)
    )
    if found is None:
        raise LookupError(f"job {job_id} has no stored output")
    return found


def reference_file(session: Session, reference_id: int) -> MediaFile:
    ref = session.get(CharacterReference, reference_id)
    if ref is None:
        raise LookupError(f"no character reference with id {reference_id}")
    # Checked again here, not only at import: a row stored before the check, or a symlink
    # changed since, must not serve a file outside the production. Sheets are the studio's own
    # renders, stored in its artifact folder.
    if ref.source != "sheet" and contained(ref.file, ref.character.project.root) is None:
        raise LookupError(f"character reference {reference_id}: the file is outside the production")
    return MediaFile(path=ref.file, mime="image/*", kind="image", sha256=ref.sha256)


@dataclass
class DecisionView:
    outcome: str
    reviewer: str
    comment: str
    source: str
    decided_at: datetime
    previous_verdict: str | None


@dataclass
class AttemptView:
    job_id: int
    attempt: int
    status: str
    verdict: str | None
    explanation: str
    artifact_ids: list[int]
    kinds: list[str]
    scores: list[ScoreLine]
    decision: DecisionView | None


@dataclass
class PhaseView:
    phase: str
    status: str
    speaking_job: int | None
    attempts: list[AttemptView]


@dataclass
class CastView:
    character_id: int
    slug: str
    name: str
    reference_ids: list[int]  # the look's references: what its renders are judged against
    look: str = "base"  # the look of the cut's latest render, else the one in force for it


@dataclass
class CutView:
    cut_id: int
    label: str
    description: str
    needs_review: bool
    phases: list[PhaseView]
    cast: list[CastView]
    scene: int = 0
    frames: int = 0
    fps: int = 0


@dataclass
class EpisodeReview:
    episode_id: int
    project: str
    number: int
    title: str
    cuts: list[CutView] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        return sum(c.needs_review for c in self.cuts)


def _attempt_view(job: Job, decision: ReviewDecision | None) -> AttemptView:
    return AttemptView(
        job_id=job.id,
        attempt=job.attempt,
        status=job.status.value,
        verdict=job.verdict.value if job.verdict else None,
        explanation=job.explanation,
        artifact_ids=[a.id for a in job.artifacts],
        kinds=[a.kind for a in job.artifacts],
        scores=[ScoreLine.of(s) for s in job.scores],
        decision=None
        if decision is None
        else DecisionView(
            outcome=decision.outcome.value,
            reviewer=decision.reviewer,
            comment=decision.comment,
            source=decision.source,
            decided_at=decision.decided_at,
            previous_verdict=decision.previous_verdict.value if decision.previous_verdict else None,
        ),
    )


def _cast(cut: Cut, latest: Job | None, looks: LookChooser) -> list[CastView]:
    return [
        CastView(
            character_id=cast.character.id,
            slug=cast.character.slug,
            name=cast.character.name,
            reference_ids=[r.id for r in look_references(cast.character, cast.look)],
            look=cast.name,
        )
        for cast in cut_cast_looks(cut, latest, looks)
    ]


def episode_review(session: Session, episode_id: int, *, needs_review_only: bool = False):
    """Cuts in order with every attempt, scores, verdicts, decisions and the cast's references."""
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise LookupError(f"no episode with id {episode_id}")
    view = EpisodeReview(
        episode_id=episode.id,
        project=episode.project.slug,
        number=episode.number,
        title=episode.title,
    )
    cuts = session.scalars(
        select(Cut)
        .join(Scene)
        .where(Scene.episode_id == episode_id)
        .order_by(Scene.number, Cut.number)
    )
    looks = LookChooser(session, episode.project_id)
    for cut in cuts:
        phases = []
        latest: Job | None = None
        for phase in REVIEWED_PHASES:
            jobs = cut_jobs(session, cut.id, phase)
            if not jobs:
                continue
            latest = jobs[-1]
            decisions = latest_decisions(session, [j.id for j in jobs])
            try:
                speaking = speaking_job(session, cut.id, phase)
            except LookupError:
                speaking = None
            phases.append(
                PhaseView(
                    phase=phase.value,
                    status=speaking.status.value if speaking else jobs[-1].status.value,
                    speaking_job=speaking.id if speaking else None,
                    attempts=[_attempt_view(j, decisions.get(j.id)) for j in jobs],
                )
            )
        flagged = any(p.status == JobStatus.NEEDS_REVIEW.value for p in phases)
        if needs_review_only and not flagged:
            continue
        view.cuts.append(
            CutView(
                cut_id=cut.id,
                label=cut_label(cut),
                description=cut.description,
                needs_review=flagged,
                phases=phases,
                cast=_cast(cut, latest, looks),
                scene=cut.scene.number,
                frames=cut.frames,
                fps=cut.fps,
            )
        )
    return view


def find_cut(session: Session, episode_id: int, label_or_number: str) -> Cut:
    """A cut of the episode by label (E01S01C02), 'scene.cut' (1.2) or id."""
    text = label_or_number.strip().upper()
    cuts = session.scalars(select(Cut).join(Scene).where(Scene.episode_id == episode_id)).all()
    for cut in cuts:
        if text in (cut_label(cut), f"{cut.scene.number}.{cut.number}", str(cut.id)):
            return cut
    raise LookupError(
        f"episode {episode_id} has no cut {label_or_number!r} (use a label like E01S01C02, "
        "scene.cut like 1.2, or a cut id)"
    )


def decision_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ReviewDecision)) or 0
