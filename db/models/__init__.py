"""The production database: one model per concept."""

from db.models.base import Base
from db.models.character import (
    Character,
    CharacterAttribute,
    CharacterReference,
    CharacterVariation,
    FaceEmbedding,
)
from db.models.enums import (
    GateDecision,
    GateScope,
    JobKind,
    JobStatus,
    Phase,
    VariationKind,
    Verdict,
)
from db.models.jobs import Artifact, GenerationParams, Job
from db.models.production import Cut, CutCasting, Episode, Scene, SceneCasting
from db.models.project import Project, StoryBible
from db.models.quality import PhaseGate, QualityScore
from db.models.review import ReviewDecision, ReviewOutcome
from db.models.story import (
    BranchMoveKind,
    Story,
    StoryAdaptation,
    StoryBranch,
    StoryBranchMove,
    StoryCommit,
    StoryCommitParent,
    StorySnapshot,
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
