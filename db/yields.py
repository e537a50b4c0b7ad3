"""Yield: how much rendering the approved screen time of an episode cost, per episode, scene
and character.

Counted over rendered items, an item being one cut in one phase (its keyframe, its animation):

- first-pass yield: items whose first attempt passed the gates (no person involved);
- attempts per approved item: every attempt made, over the items approved (by gates or people);
- render seconds per approved second: time spent rendering all attempts (started -> finished),
  over the screen time (frames / fps) of the approved items;
- could-not-judge share: attempts the gates could not judge, over attempts judged;
- human share: approved or rejected items whose verdict is a person's decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Cut, Episode, Job, JobStatus, Phase, ReviewDecision, Scene, Verdict

RENDERED_PHASES = (Phase.GENERATION, Phase.ANIMATION)


@dataclass
class YieldFigures:
    items: int = 0  # cut x phase with at least one attempt
    approved: int = 0
    first_pass: int = 0
    attempts: int = 0
    judged: int = 0
    could_not_judge: int = 0
    decided_by_people: int = 0
    render_seconds: float = 0.0
    approved_screen_seconds: float = 0.0

    @property
    def first_pass_yield(self) -> float | None:
        return self.first_pass / self.items if self.items else None

    @property
    def attempts_per_approved(self) -> float | None:
        return self.attempts / self.approved if self.approved else None

    @property
    def render_seconds_per_approved_second(self) -> float | None:
        if not self.approved_screen_seconds:
            return None
        return self.render_seconds / self.approved_screen_seconds

    @property
    def could_not_judge_share(self) -> float | None:
        return self.could_not_judge / self.judged if self.judged else None

    @property
    def human_share(self) -> float | None:
        return self.decided_by_people / self.items if self.items else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "items": self.items,
            "approved": self.approved,
            "attempts": self.attempts,
            "render_seconds": round(self.render_seconds, 3),
            "first_pass_yield": self.first_pass_yield,
            "attempts_per_approved": self.attempts_per_approved,
            "render_seconds_per_approved_second": self.render_seconds_per_approved_second,
            "could_not_judge_share": self.could_not_judge_share,
            "human_share": self.human_share,
        }

    def describe(self) -> str:
        def share(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.0%}"

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        return (
            f"{self.approved}/{self.items} approved, first pass {share(self.first_pass_yield)}, "
            f"{num(self.attempts_per_approved)} attempts per approved, "
            f"{num(self.render_seconds_per_approved_second)} render s per approved s, "
            f"could not judge {share(self.could_not_judge_share)}, "
            f"people decided {share(self.human_share)}"
        )


@dataclass
class EpisodeYield:
    episode_id: int
    project: str
    number: int
    episode: YieldFigures = field(default_factory=YieldFigures)
    by_phase: dict[str, YieldFigures] = field(default_factory=dict)
    by_scene: dict[int, YieldFigures] = field(default_factory=dict)
    by_character: dict[str, YieldFigures] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "episode_id": self.episode_id,
            "project": self.project,
            "number": self.number,
            "episode": self.episode.as_dict(),
            "by_phase": {k: v.as_dict() for k, v in self.by_phase.items()},
            "by_scene": {str(k): v.as_dict() for k, v in self.by_scene.items()},
            "by_character": {k: v.as_dict() for k, v in self.by_character.items()},
        }


def _add(figures: YieldFigures, item: dict) -> None:
    figures.items += 1
    figures.approved += item["approved"]
    figures.first_pass += item["first_pass"]
    figures.attempts += item["attempts"]
    figures.judged += item["judged"]
    figures.could_not_judge += item["could_not_judge"]
    figures.decided_by_people += item["decided"]
    figures.render_seconds += item["render_seconds"]
    figures.approved_screen_seconds += item["screen_seconds"] if item["approved"] else 0.0


def episode_yield(session: Session, episode_id: int) -> EpisodeYield:
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise LookupError(f"no episode with id {episode_id}")
    report = EpisodeYield(
        episode_id=episode.id, project=episode.project.slug, number=episode.number
    )
    cuts = session.scalars(
        select(Cut)
        .join(Scene)
        .where(Scene.episode_id == episode_id)
        .order_by(Scene.number, Cut.number)
    ).all()
    jobs = session.scalars(
        select(Job)
        .where(
            Job.cut_id.in_([c.id for c in cuts]),
            Job.phase.in_(RENDERED_PHASES),
            Job.parent_job_id.is_(None),
        )
        .order_by(Job.attempt)
    ).all()
    decisions: dict[int, ReviewDecision] = {}
    for d in session.scalars(
        select(ReviewDecision)
        .where(ReviewDecision.job_id.in_([j.id for j in jobs]))
        .order_by(ReviewDecision.decided_at, ReviewDecision.id)
    ):
        decisions[d.job_id] = d  # the newest decision per job
    by_item: dict[tuple[int, Phase], list[Job]] = {}
    for job in jobs:
        by_item.setdefault((job.cut_id, job.phase), []).append(job)
    for cut in cuts:
        cast = [c.character.slug for c in cut.casting] or [
            c.character.slug for c in cut.scene.casting
        ]
        for phase in RENDERED_PHASES:
            attempts = by_item.get((cut.id, phase))
            if not attempts:
                continue
            # What the gates said, before any person's decision replaced it.
            automatic = [
                decisions[j.id].previous_verdict if j.id in decisions else j.verdict
                for j in attempts
            ]
            first = attempts[0]
            item = {
                "approved": any(j.status is JobStatus.PASSED for j in attempts),
                "first_pass": first.attempt == 1 and automatic[0] is Verdict.PASSED
                and first.id not in decisions,
                "attempts": len(attempts),
                "judged": sum(v is not None for v in automatic),
                "could_not_judge": sum(v is Verdict.COULD_NOT_JUDGE for v in automatic),
                "decided": any(j.id in decisions for j in attempts),
                "render_seconds": sum(j.duration_seconds or 0.0 for j in attempts),
                "screen_seconds": cut.duration_seconds,
            }
            _add(report.episode, item)
            _add(report.by_phase.setdefault(phase.value, YieldFigures()), item)
            _add(report.by_scene.setdefault(cut.scene.number, YieldFigures()), item)
            for slug in dict.fromkeys(cast):
                _add(report.by_character.setdefault(slug, YieldFigures()), item)
    return report
