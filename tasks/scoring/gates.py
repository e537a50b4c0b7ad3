"""Pass / fail: per job from its metrics, per phase from its items. Both explain themselves.

A job fails when any judged metric fails. Otherwise it could not be judged when a metric
could not be computed (no face found, weights missing) or a required one was not measured,
unless ``QualityThresholds.could_not_judge_blocks`` is off; then it passes when at least one
metric passed. A phase gate opens when the share of passed items reaches the phase's pass
rate (80% by default); items that could not be judged count as not passing, or, with
``could_not_judge_blocks`` off, are left out of the rate. Every item is listed either way.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from blocks.quality import QualityThresholds
from db.vocabulary import GateDecision, Phase, Verdict
from tasks.scoring.results import MetricResult

_SYMBOL = {
    Verdict.PASSED: "passed",
    Verdict.FAILED: "FAILED",
    Verdict.COULD_NOT_JUDGE: "could not judge",
}


def _phase(phase: Phase | str) -> Phase:
    try:
        return Phase(phase)
    except ValueError:
        raise ValueError(
            f"unknown phase {phase!r}; phases are {[p.value for p in Phase]}"
        ) from None


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:#.4g}"


class MetricLine(BaseModel):
    """One metric of one job, judged (verdict None: no gate configured, shown only)."""

    metric: str
    subject: str | None = None
    value: float | None
    threshold: float | None = None
    comparator: str | None = None
    verdict: Verdict | None
    reason: str | None = None
    required: bool = False
    threshold_source: str | None = None

    def describe(self) -> str:
        name = self.metric + (f" [{self.subject}]" if self.subject else "")
        if self.verdict is None:
            return f"{name}: {_num(self.value)} (no gate; for information)"
        rule = (
            "none configured" if self.threshold is None else f"{self.comparator} {self.threshold:g}"
        )
        if self.threshold_source and self.threshold_source != "default gate":
            rule += f", {self.threshold_source}"
        if self.verdict == Verdict.COULD_NOT_JUDGE:
            return f"{name}: could not judge ({self.reason}); gate {rule}"
        return f"{name}: {_num(self.value)}, gate {rule} -> {_SYMBOL[self.verdict]}"


class JobDecision(BaseModel):
    phase: Phase
    verdict: Verdict
    lines: list[MetricLine]
    passed: int
    failed: int
    could_not_judge: int
    explanation: str


def _judge(
    result: MetricResult,
    phase: Phase,
    thresholds: QualityThresholds,
    face_thresholds: Mapping[str, Any] | None,
    required: Collection[str],
) -> MetricLine:
    found = thresholds.gate_for(result.metric, phase, result.subject, face_thresholds)
    line = MetricLine(
        metric=result.metric,
        subject=result.subject,
        value=result.value,
        verdict=None,
        reason=result.reason,
        required=result.metric in required,
    )
    if found is None:
        return line
    gate, source = found
    line.threshold, line.comparator, line.threshold_source = gate.threshold, gate.comparator, source
    if result.value is None:
        line.verdict = Verdict.COULD_NOT_JUDGE
        line.reason = result.reason or "not computed"
    elif not math.isfinite(result.value):
        line.verdict = Verdict.COULD_NOT_JUDGE
        line.reason = f"value is {result.value}"
    else:
        line.verdict = Verdict.PASSED if gate.passes(result.value) else Verdict.FAILED
    return line


def decide_job(
    results: Iterable[MetricResult],
    phase: Phase | str,
    thresholds: QualityThresholds | None = None,
    face_thresholds: Mapping[str, Any] | None = None,
    *,
    required: Collection[str] | None = None,
) -> JobDecision:
    """Judge one job's metrics against the phase's gates.

    ``face_thresholds``: per character slug, a threshold or (threshold, how it was set), used
    unless QualityThresholds sets one by hand. ``required`` replaces the phase's required
    metrics (e.g. without face_similarity for a cut with nobody in it).
    """
    phase = _phase(phase)
    thresholds = thresholds or QualityThresholds()
    needed = list(required) if required is not None else thresholds.required_for(phase)
    lines = [_judge(r, phase, thresholds, face_thresholds, needed) for r in results]
    measured = {line.metric for line in lines}
    for metric in needed:
        if metric in measured:
            continue
        found = thresholds.gate_for(metric, phase)
        gate = found[0] if found else None
        lines.append(
            MetricLine(
                metric=metric,
                value=None,
                threshold=gate.threshold if gate else None,
                comparator=gate.comparator if gate else ">=",
                verdict=Verdict.COULD_NOT_JUDGE,
                reason="not measured",
                required=True,
                threshold_source=found[1] if found else None,
            )
        )
    counts = {v: sum(1 for line in lines if line.verdict == v) for v in Verdict}
    if counts[Verdict.FAILED]:
        verdict = Verdict.FAILED
    elif counts[Verdict.COULD_NOT_JUDGE] and thresholds.could_not_judge_blocks:
        verdict = Verdict.COULD_NOT_JUDGE
    elif counts[Verdict.PASSED]:
        verdict = Verdict.PASSED
    else:
        verdict = Verdict.COULD_NOT_JUDGE

    judged = counts[Verdict.PASSED] + counts[Verdict.FAILED] + counts[Verdict.COULD_NOT_JUDGE]
    head = f"Job {verdict.value.replace('_', ' ').upper()} in phase {phase.value}: "
    if not lines:
        head += "nothing was measured and nothing is required in this phase."
    else:
        head += (
            f"{counts[Verdict.PASSED]} passed, {counts[Verdict.FAILED]} failed, "
            f"{counts[Verdict.COULD_NOT_JUDGE]} could not be judged, of {judged} gated metric(s)."
        )
        if counts[Verdict.COULD_NOT_JUDGE] and not thresholds.could_not_judge_blocks:
            head += " Could-not-judge metrics do not block (could_not_judge_blocks is off)."
    explanation = "\n".join([head, *(f"- {line.describe()}" for line in lines)])
    return JobDecision(
        phase=phase,
        verdict=verdict,
        lines=lines,
        passed=counts[Verdict.PASSED],
        failed=counts[Verdict.FAILED],
        could_not_judge=counts[Verdict.COULD_NOT_JUDGE],
        explanation=explanation,
    )


# --- phase gate ------------------------------------------------------------------------------


class GateItem(BaseModel):
    label: str
    verdict: Verdict


class PhaseGateDecision(BaseModel):
    phase: Phase
    decision: GateDecision
    pass_rate: float | None  # None when no item counts
    required_rate: float
    total: int
    counted: int  # items in the rate's denominator
    passed: int
    failed: int
    could_not_judge: int
    items: list[GateItem]
    explanation: str


def _labels(items: list[GateItem], verdict: Verdict) -> list[str]:
    return [item.label for item in items if item.verdict == verdict]


def decide_phase_gate(
    items: Iterable[tuple[str, Verdict | str | JobDecision]],
    phase: Phase | str,
    thresholds: QualityThresholds | None = None,
) -> PhaseGateDecision:
    """Open the phase when enough of its items (label, verdict) passed; explain either way."""
    phase = _phase(phase)
    thresholds = thresholds or QualityThresholds()
    gate_items = [
        GateItem(label=label, verdict=v.verdict if isinstance(v, JobDecision) else Verdict(v))
        for label, v in items
    ]
    passed = _labels(gate_items, Verdict.PASSED)
    failed = _labels(gate_items, Verdict.FAILED)
    unjudged = _labels(gate_items, Verdict.COULD_NOT_JUDGE)
    counted = len(gate_items) if thresholds.could_not_judge_blocks else len(passed) + len(failed)
    required = thresholds.pass_rate_for(phase)
    rate = len(passed) / counted if counted else None
    # The tolerance keeps 4 of 5 at a 0.8 rate an open gate whatever the float rounding.
    is_open = rate is not None and rate >= required - 1e-9
    decision = GateDecision.OPEN if is_open else GateDecision.CLOSED

    head = f"Phase {phase.value} gate {decision.value.upper()}: "
    if not gate_items:
        head += f"no items to judge (at least {required:.0%} must pass)."
    elif rate is None:
        head += f"none of the {len(gate_items)} items could be judged."
    else:
        head += (
            f"{len(passed)} of {counted} counted items passed ({rate:.0%}; "
            f"{'at least' if is_open else 'below the'} {required:.0%} required)."
        )
    lines = [head]
    if failed:
        lines.append(f"Failed ({len(failed)}): {', '.join(failed)}.")
    if unjudged:
        how = (
            "counted as not passing"
            if thresholds.could_not_judge_blocks
            else "left out of the pass rate"
        )
        lines.append(f"Could not judge ({len(unjudged)}, {how}): {', '.join(unjudged)}.")
    if passed:
        lines.append(f"Passed ({len(passed)}): {', '.join(passed)}.")
    return PhaseGateDecision(
        phase=phase,
        decision=decision,
        pass_rate=rate,
        required_rate=required,
        total=len(gate_items),
        counted=counted,
        passed=len(passed),
        failed=len(failed),
        could_not_judge=len(unjudged),
        items=gate_items,
        explanation="\n".join(lines),
    )
