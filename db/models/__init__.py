"""The production database: one model per concept."""

from db.models.base import Base
from db.models.character import (
    Character,
    CharacterAttribute,
    CharacterReference,
    CharacterVariation,
    FaceEmbedding,
)
from db.models.jobs import Artifact, GenerationParams, Job, JobRun
from db.models.production import Cut, CutCasting, Episode, Scene, SceneCasting
from db.models.project import Project, StoryBible
from db.models.quality import PhaseGate, QualityScore
from db.models.review import ReviewDecision
from db.models.story import (
    Story,
    StoryAdaptation,
    StoryBranch,
    StoryBranchMove,
    StoryCommit,
    StoryCommitParent,
    StorySnapshot,
)

# The vocabulary lives in db.vocabulary (no ORM); re-exported for the models' own users.
from db.vocabulary import (
    BranchMoveKind,
    GateDecision,
    GateScope,
    JobKind,
    JobRunStatus,
    JobStatus,
    Phase,
    ReviewOutcome,
    VariationKind,
    Verdict,
)

__all__ = [
    "Artifact",
    "Base",
    "BranchMoveKind",
    "Character",
    "CharacterAttribute",
    "CharacterReference",
    "CharacterVariation",
    "Cut",
    "CutCasting",
    "Episode",
    "FaceEmbedding",
    "GateDecision",
    "GateScope",
    "GenerationParams",
    "Job",
    "JobKind",
    "JobRun",
    "JobRunStatus",
    "JobStatus",
    "Phase",
    "PhaseGate",
    "Project",
    "QualityScore",
    "ReviewDecision",
    "ReviewOutcome",
    "Scene",
    "SceneCasting",
    "Story",
    "StoryAdaptation",
    "StoryBible",
    "StoryBranch",
    "StoryBranchMove",
    "StoryCommit",
    "StoryCommitParent",
    "StorySnapshot",
    "VariationKind",
    "Verdict",
]
