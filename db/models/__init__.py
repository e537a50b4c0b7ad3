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

__all__ = [
    "Artifact",
    "Base",
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
    "Scene",
    "SceneCasting",
    "StoryBible",
    "VariationKind",
    "Verdict",
]
