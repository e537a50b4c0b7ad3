"""Which consecutive cuts are compared for continuity, and their stored scores.

Within a scene, cut N and cut N+1 are compared when both have footage (what the reel shows
for them, approved or not) and they share a character (the cut's casting, else the scene's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import ContinuityScore, Cut, Scene
from db.reels import ReelCut, reel_cut


@dataclass
class ContinuityPair:
    episode_id: int
    previous: ReelCut
    current: ReelCut
    shared: list[str]  # character slugs in both cuts
    # Reference face embeddings per shared character: which face in a frame is whose.
    references: dict[str, list[list[float]]] = field(default_factory=dict)


def _cast(cut: Cut) -> dict[str, Any]:
    characters = [c.character for c in cut.casting] or [c.character for c in cut.scene.casting]
    return {c.slug: c for c in characters}


def continuity_pairs(session: Session, episode_id: int) -> list[ContinuityPair]:
    cuts = session.scalars(
        select(Cut)
        .join(Scene)
        .where(Scene.episode_id == episode_id)
        .order_by(Scene.number, Cut.number)
    ).all()
    pairs = []
    for before, after in zip(cuts, cuts[1:], strict=False):
        if before.scene_id != after.scene_id:
            continue
        cast_before, cast_after = _cast(before), _cast(after)
        shared = [slug for slug in cast_after if slug in cast_before]
        if not shared:
            continue
        previous, current = reel_cut(session, before), reel_cut(session, after)
        if previous.footage is None or current.footage is None:
            continue
        references = {
            slug: [
                list(e.vector)
                for r in sorted(cast_after[slug].references, key=lambda r: r.id)
                for e in sorted(r.embeddings, key=lambda e: e.id)
            ]
            for slug in shared
        }
        pairs.append(ContinuityPair(episode_id, previous, current, shared, references))
    return pairs


def store_continuity(session: Session, episode_id: int, rows: list[dict[str, Any]]) -> None:
    """The episode's continuity scores now: earlier ones are replaced (the footage moved on)."""
    session.execute(delete(ContinuityScore).where(ContinuityScore.episode_id == episode_id))
    session.add_all(ContinuityScore(episode_id=episode_id, **row) for row in rows)
    session.flush()


@dataclass
class ContinuityLine:
    previous_cut_id: int
    metric: str
    subject: str
    value: float | None
    threshold: float | None
    comparator: str
    verdict: str
    reason: str | None


def episode_continuity(session: Session, episode_id: int) -> dict[int, list[ContinuityLine]]:
    """Per cut id, its continuity with the cut before it."""
    found: dict[int, list[ContinuityLine]] = {}
    for s in session.scalars(
        select(ContinuityScore)
        .where(ContinuityScore.episode_id == episode_id)
        .order_by(ContinuityScore.cut_id, ContinuityScore.metric, ContinuityScore.subject)
    ):
        found.setdefault(s.cut_id, []).append(
            ContinuityLine(
                previous_cut_id=s.previous_cut_id,
                metric=s.metric,
                subject=s.subject,
                value=s.value,
                threshold=s.threshold,
                comparator=s.comparator,
                verdict=s.verdict.value,
                reason=s.reason,
            )
        )
    return found
