"""The production database: one model per concept."""

from db.models.base import Base
from db.models.character import (
    Character,
    CharacterAttribute,
    CharacterLook,
    CharacterReference,
    CharacterVariation,
    FaceCalibration,
    FaceEmbedding,
)
from db.models.continuity import ContinuityScore
from db.models.jobs import (
    Artifact,
    DatabaseIdentity,
    GenerationParams,
    Job,
    JobLook,
    JobRun,
    ProcessHeartbeat,
    RenderCancellation,
)
from db.models.production import Cut, CutCasting, Episode, Scene, SceneCasting
from db.models.project import Announcement, Project, StoryBible
from db.models.quality import PhaseGate, QualityScore
from db.models.reel import Reel
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
    "Announcement",
    "Artifact",
    "Base",
    "BranchMoveKind",
    "Character",
    "CharacterAttribute",
    "CharacterLook",
    "CharacterReference",
    "CharacterVariation",
    "ContinuityScore",
    "Cut",
    "CutCasting",
    "DatabaseIdentity",
    "Episode",
    "FaceCalibration",
    "FaceEmbedding",
    "GateDecision",
    "GateScope",
    "GenerationParams",
    "Job",
    "JobLook",
    "JobKind",
    "JobRun",
    "JobRunStatus",
    "JobStatus",
    "Phase",
    "PhaseGate",
    "ProcessHeartbeat",
    "Project",
    "QualityScore",
    "Reel",
    "RenderCancellation",
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
