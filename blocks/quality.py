"""Quality gates: the threshold of every metric, what each phase requires. Edited in the UI."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, field_validator, model_validator

from db.vocabulary import Phase

Comparator = Literal[">=", "<="]


class MetricGate(BaseModel):
    """A metric passes when ``value <comparator> threshold``."""

    threshold: float
    comparator: Comparator = ">="

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.comparator == ">=" else value <= self.threshold

    def describe(self) -> str:
        return f"{self.comparator} {self.threshold:g}"


# The studio's defaults (SPEC section 7). Metric names are MetricResult.metric.
DEFAULT_GATES: dict[str, MetricGate] = {
    "face_similarity": MetricGate(threshold=0.70),
    "aesthetic": MetricGate(threshold=5.5),
    "style_adherence": MetricGate(threshold=0.85),
    "temporal_lpips": MetricGate(threshold=0.15, comparator="<="),
    "motion_smoothness": MetricGate(threshold=0.95),
    "subject_consistency": MetricGate(threshold=0.90),
    "sheet_consistency": MetricGate(threshold=0.85),
}

# Metrics a job must have measured in each phase. Others that are measured anyway (face
# similarity on a sheet or on animation keyframes) are judged against their gate too.
DEFAULT_REQUIRED: dict[str, list[str]] = {
    Phase.CONCEPT.value: ["sheet_consistency"],
    Phase.GENERATION.value: ["face_similarity", "aesthetic", "style_adherence"],
    Phase.ANIMATION.value: ["temporal_lpips", "motion_smoothness", "subject_consistency"],
    Phase.QUALITY.value: [],
}

# Continuity between consecutive cuts of a scene (last frame of one, first of the next).
# Measured and shown always; counted by the quality gate only with gate_on_continuity, since
# these starting values are not calibrated on a production yet.
DEFAULT_CONTINUITY_GATES: dict[str, MetricGate] = {
    "continuity_identity": MetricGate(threshold=0.60),
    "continuity_style": MetricGate(threshold=0.85),
    "continuity_colour": MetricGate(threshold=0.75),
}

PHASES = [p.value for p in Phase]


def _check_phases(mapping: Mapping[str, object], field: str) -> None:
    unknown = sorted(set(mapping) - set(PHASES))
    if unknown:
        raise ValueError(f"{field}: unknown phase(s) {unknown}; phases are {PHASES}")


class QualityThresholds(Block):
    """Pass/fail rules for jobs and phase gates. Every value has the studio's default."""

    _block_type_name = "Quality Thresholds"
    _block_type_slug = "anime-quality-thresholds"
    _description = (
        "Metric thresholds and comparators, metrics required per phase, per-character face "
        "thresholds and the phase-gate pass rate."
    )
    # A generic Prefect logo until the studio hosts its own; docs: editing blocks.
    _logo_url = (
        "https://raw.githubusercontent.com/PrefectHQ/prefect/"
        "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/process.png"
    )
    _documentation_url = "https://docs.prefect.io/latest/develop/blocks"

    gates: dict[str, MetricGate] = Field(
        default_factory=lambda: {k: g.model_copy() for k, g in DEFAULT_GATES.items()},
        description="threshold and comparator per metric; metrics left out keep the default.",
    )
    phase_gates: dict[str, dict[str, MetricGate]] = Field(
        default_factory=dict,
        description="per phase, gates that replace the ones above in that phase.",
    )
    required_metrics: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_REQUIRED.items()},
        description="metrics a job must have measured, per phase (missing = could not judge).",
    )
    face_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="face_similarity threshold per character slug, set by hand; wins over "
        "the calibrated one.",
    )
    phase_pass_rate: float = Field(
        0.80, ge=0.0, le=1.0, description="share of a phase's items that must pass to open it."
    )
    phase_pass_rates: dict[str, float] = Field(
        default_factory=dict, description="per phase, a pass rate replacing the one above."
    )
    could_not_judge_blocks: bool = Field(
        True,
        description="a metric or item that could not be judged counts as not passing; when "
        "off it is listed but left out of the verdict and of the pass rate.",
    )

    continuity_gates: dict[str, MetricGate] = Field(
        default_factory=lambda: {k: g.model_copy() for k, g in DEFAULT_CONTINUITY_GATES.items()},
        description="thresholds of continuity between consecutive cuts sharing a character: "
        "continuity_identity (face), continuity_style (CLIP), continuity_colour (histogram).",
    )
    gate_on_continuity: bool = Field(
        False,
        description="count continuity in the quality gate (off until calibrated on a "
        "production; the scores are measured and shown either way).",
    )

    @field_validator("continuity_gates")
    @classmethod
    def _keep_continuity_defaults(cls, gates: dict[str, MetricGate]) -> dict[str, MetricGate]:
        merged = {k: g.model_copy() for k, g in DEFAULT_CONTINUITY_GATES.items()}
        merged.update(gates)
        return merged

    @field_validator("gates")
    @classmethod
    def _keep_defaults(cls, gates: dict[str, MetricGate]) -> dict[str, MetricGate]:
        # Editing one gate in the UI must not silently drop the others.
        merged = {k: g.model_copy() for k, g in DEFAULT_GATES.items()}
        merged.update(gates)
        return merged

    @field_validator("face_thresholds")
    @classmethod
    def _cosines(cls, values: dict[str, float]) -> dict[str, float]:
        bad = {slug: v for slug, v in values.items() if not -1.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"face_thresholds are cosines in [-1, 1]; out of range: {bad}")
        return values

    @field_validator("phase_pass_rates")
    @classmethod
    def _rates(cls, values: dict[str, float]) -> dict[str, float]:
        bad = {phase: v for phase, v in values.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"phase_pass_rates must be in [0, 1]; out of range: {bad}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> QualityThresholds:
        _check_phases(self.phase_gates, "phase_gates")
        _check_phases(self.required_metrics, "required_metrics")
        _check_phases(self.phase_pass_rates, "phase_pass_rates")
        for phase, metrics in self.required_metrics.items():
            ungated = [m for m in metrics if m not in self.gates]
            if ungated:
                raise ValueError(
                    f"required_metrics[{phase!r}] names {ungated}, which have no gate; "
                    f"gated metrics are {sorted(self.gates)}"
                )
        return self

    # --- lookups used by tasks/scoring/gates.py -------------------------------------------

    def required_for(self, phase: Phase | str) -> list[str]:
        return list(self.required_metrics.get(Phase(phase).value, []))

    def pass_rate_for(self, phase: Phase | str) -> float:
        return self.phase_pass_rates.get(Phase(phase).value, self.phase_pass_rate)

    def gate_for(
        self,
        metric: str,
        phase: Phase | str,
        subject: str | None = None,
        calibrated: Mapping[str, float | tuple[float | None, str] | None] | None = None,
    ) -> tuple[MetricGate, str] | None:
        """The gate that applies, and where its threshold comes from; None when ungated.

        For face_similarity of a character: the hand-set ``face_thresholds`` value first,
        then ``calibrated[subject]``: a threshold, or (threshold, how it was set) as the cast's
        calibration gives it (threshold None: too few references, the phase's gate applies
        and the explanation says why), then the phase's gate, then the default.
        """
        phase_value = Phase(phase).value
        base = self.phase_gates.get(phase_value, {}).get(metric)
        source = f"{phase_value} phase gate"
        if base is None:
            base = self.gates.get(metric)
            source = "default gate"
        if base is None:
            return None
        if metric == "face_similarity" and subject is not None:
            if subject in self.face_thresholds:
                gate = MetricGate(threshold=self.face_thresholds[subject], comparator=">=")
                return gate, f"set for {subject} in QualityThresholds"
            found = (calibrated or {}).get(subject)
            if isinstance(found, tuple):
                value, how = found
                if value is None:
                    return base, f"{source}; {how}"
                return MetricGate(threshold=float(value), comparator=">="), how
            if found is not None:
                gate = MetricGate(threshold=float(found), comparator=">=")
                return gate, f"calibrated for {subject}"
        return base, source
