"""Build an episode's reel from what is stored and record it: the one entry point the flow, the
CLI and the API share."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from db import reels as db_reels
from db.engine import session_scope
from db.models import Reel
from tasks.reel.assemble import build_reel


class ReelSummary(BaseModel):
    reel_id: int
    episode_id: int
    label: str
    path: str
    sha256: str
    size_bytes: int
    frames: int
    fps: int
    width: int
    height: int
    duration_seconds: float
    contact_sheet: str | None
    only_approved: bool
    sources: dict[str, int] = Field(default_factory=dict)  # animation/keyframe/attempt/slate
    cuts: list[dict] = Field(default_factory=list)
    encoded: int | None = None  # cuts encoded by this export; None: a reel read back

    @classmethod
    def of(cls, reel: Reel, label: str) -> ReelSummary:
        return cls(
            reel_id=reel.id,
            episode_id=reel.episode_id,
            label=label,
            path=reel.uri,
            sha256=reel.sha256,
            size_bytes=reel.size_bytes,
            frames=reel.frames,
            fps=reel.fps,
            width=reel.width,
            height=reel.height,
            duration_seconds=reel.duration_seconds,
            contact_sheet=reel.contact_sheet_uri,
            only_approved=reel.only_approved,
            sources=dict(Counter(c["source"] for c in reel.cuts)),
            cuts=list(reel.cuts),
        )

    def describe(self) -> str:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(self.sources.items()))
        return (
            f"reel: {self.path}\n  {self.frames} frames at {self.fps} fps "
            f"({self.duration_seconds:.2f} s, {self.width}x{self.height}, H.264), cuts: {shown}\n"
            f"  contact sheet: {self.contact_sheet}\n  sha256 {self.sha256}"
            + (
                f"\n  {self.encoded} of {len(self.cuts)} cuts encoded now, the others kept"
                " from before"
                if self.encoded is not None
                else ""
            )
        )


def export_reel(
    episode_id: int,
    *,
    fps: int | None = None,
    only_approved: bool = False,
    flow_run_id: str | None = None,
    root: Path | None = None,
) -> ReelSummary:
    """Read the episode's footage (one transaction), encode outside it, store the reel row."""
    with session_scope() as session:
        plan = db_reels.reel_plan(session, episode_id, fps=fps, only_approved=only_approved)
    built = build_reel(plan, root)
    with session_scope() as session:
        reel = db_reels.store_reel(
            session,
            project_id=plan.project_id,
            episode_id=plan.episode_id,
            uri=str(built.path),
            sha256=built.sha256,
            size_bytes=built.size_bytes,
            fps=built.fps,
            frames=built.frames,
            width=built.width,
            height=built.height,
            duration_seconds=built.duration_seconds,
            only_approved=only_approved,
            cuts=built.cuts,
            contact_sheet_uri=str(built.contact_sheet),
            contact_sheet_sha256=built.contact_sheet_sha256,
            prefect_flow_run_id=flow_run_id,
        )
        summary = ReelSummary.of(reel, f"{plan.project} episode {plan.episode}")
    summary.encoded = built.encoded
    return summary
