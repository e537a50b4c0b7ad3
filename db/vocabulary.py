"""The studio's vocabularies, shared by the database, the flows, the blocks and the API.

Plain ``StrEnum``s and names, nothing else: importing this module loads no ORM and no pydantic,
so a block, a flow or a schema can name a phase or a status without pulling in ``db.models``.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    CONCEPT = "concept"
    GENERATION = "generation"
    ANIMATION = "animation"
    QUALITY = "quality"


class VariationKind(enum.StrEnum):
    OUTFIT = "outfit"
    EXPRESSION = "expression"
    POSE = "pose"


class JobKind(enum.StrEnum):
    CHARACTER_SHEET = "character_sheet"
    KEYFRAME = "keyframe"
    ANIMATION = "animation"
    QUALITY_REVIEW = "quality_review"
    REPRODUCTION = "reproduction"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RENDERED = "rendered"  # output stored, not judged yet
    PASSED = "passed"
    FAILED = "failed"  # judged and below its gate
    NEEDS_REVIEW = "needs_review"  # attempt budget spent: a person decides
    ERROR = "error"  # render or infrastructure failure
    CANCELLED = "cancelled"


class JobRunStatus(enum.StrEnum):
    """How one run's work on a job ended (a job re-used by a later run has one per run)."""

    RUNNING = "running"
    RENDERED = "rendered"
    ERROR = "error"
    CRASHED = "crashed"  # its process died: marked by the next run or `anime doctor`
    CANCELLED = "cancelled"


class Verdict(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    COULD_NOT_JUDGE = "could_not_judge"


class GateDecision(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class GateScope(enum.StrEnum):
    EPISODE = "episode"
    CHARACTER = "character"
    PROJECT = "project"


class ReviewOutcome(enum.StrEnum):
    """A person's decision on a cut's output."""

    APPROVED = "approved"
    REJECTED = "rejected"


class BranchMoveKind(enum.StrEnum):
    """Why a story branch head moved."""

    CREATE = "create"
    COMMIT = "commit"
    MERGE = "merge"
    FAST_FORWARD = "fast_forward"
    IMPORT = "import"


BASE_LOOK = "base"  # the character's own prompt, attributes and anchor references

__all__ = [
    "BASE_LOOK",
    "BranchMoveKind",
    "GateDecision",
    "GateScope",
    "JobKind",
    "JobRunStatus",
    "JobStatus",
    "Phase",
    "ReviewOutcome",
    "VariationKind",
    "Verdict",
]
