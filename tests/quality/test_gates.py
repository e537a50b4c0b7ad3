"""Job decisions, phase gates and the QualityThresholds block."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from blocks.quality import MetricGate, QualityThresholds
from db.vocabulary import GateDecision, Phase, Verdict
from tasks.scoring.gates import JobDecision, decide_job, decide_phase_gate
from tasks.scoring.results import MetricResult


def m(metric: str, value: float | None, subject: str | None = None, reason: str | None = None):
    return MetricResult(metric=metric, value=value, subject=subject, reason=reason)


GOOD_GENERATION = [
    m("face_similarity", 0.82, "mika"),
    m("aesthetic", 6.1),
    m("style_adherence", 0.9),
]


def line(decision: JobDecision, metric: str, subject: str | None = None):
    [found] = [x for x in decision.lines if x.metric == metric and x.subject == subject]
    return found


def test_a_job_with_every_metric_above_its_gate_passes():
    decision = decide_job(GOOD_GENERATION, "generation")
    assert decision.verdict == Verdict.PASSED
    assert decision.phase == Phase.GENERATION
    assert (decision.passed, decision.failed, decision.could_not_judge) == (3, 0, 0)
    face = line(decision, "face_similarity", "mika")
    assert (face.threshold, face.comparator, face.verdict) == (0.70, ">=", Verdict.PASSED)


def test_one_metric_below_its_gate_fails_the_job_and_says_which():
    results = [*GOOD_GENERATION[:1], m("aesthetic", 5.0), GOOD_GENERATION[2]]
    decision = decide_job(results, Phase.GENERATION)
    assert decision.verdict == Verdict.FAILED
    assert line(decision, "aesthetic").verdict == Verdict.FAILED
    assert "aesthetic: 5.000, gate >= 5.5 -> FAILED" in decision.explanation
    assert decision.explanation.startswith("Job FAILED in phase generation")


def test_explanation_lists_every_metric_value_threshold_and_verdict():
    results = [
        m("face_similarity", 0.82, "mika"),
        m("face_similarity", None, "ren", reason="no face found"),
        m("aesthetic", 6.1),
        m("style_adherence", 0.84),
        m("temporal_lpips", 0.12),
        m("clip_score", 0.31),  # no gate configured: shown, not judged
    ]
    decision = decide_job(results, "generation")
    text = decision.explanation.splitlines()
    assert len(text) == 1 + len(results)  # headline + one line per metric
    for expected in (
        "face_similarity [mika]: 0.8200, gate >= 0.7 -> passed",
        "face_similarity [ren]: could not judge (no face found); gate >= 0.7",
        "aesthetic: 6.100, gate >= 5.5 -> passed",
        "style_adherence: 0.8400, gate >= 0.85 -> FAILED",
        "temporal_lpips: 0.1200, gate <= 0.15 -> passed",
        "clip_score: 0.3100 (no gate; for information)",
    ):
        assert any(expected in row for row in text), expected
    assert line(decision, "clip_score").verdict is None


def test_lpips_passes_at_or_below_its_gate():
    verdicts = {
        value: decide_job([m("temporal_lpips", value)], "animation", required=[]).verdict
        for value in (0.10, 0.15, 0.16, 0.30)
    }
    assert verdicts == {
        0.10: Verdict.PASSED,
        0.15: Verdict.PASSED,
        0.16: Verdict.FAILED,
        0.30: Verdict.FAILED,
    }


def test_a_required_metric_that_was_not_measured_cannot_be_judged():
    decision = decide_job([m("temporal_lpips", 0.1), m("motion_smoothness", 0.97)], "animation")
    assert decision.verdict == Verdict.COULD_NOT_JUDGE
    missing = line(decision, "subject_consistency")
    assert (missing.verdict, missing.reason, missing.required) == (
        Verdict.COULD_NOT_JUDGE,
        "not measured",
        True,
    )
    assert "subject_consistency: could not judge (not measured); gate >= 0.9" in (
        decision.explanation
    )


def test_no_face_found_blocks_unless_could_not_judge_blocks_is_off():
    results = [m("face_similarity", None, "mika", reason="no face found"), *GOOD_GENERATION[1:]]
    blocking = decide_job(results, "generation")
    assert blocking.verdict == Verdict.COULD_NOT_JUDGE
    lenient = decide_job(results, "generation", QualityThresholds(could_not_judge_blocks=False))
    assert lenient.verdict == Verdict.PASSED
    assert "could_not_judge_blocks is off" in lenient.explanation
    assert "no face found" in lenient.explanation  # still listed
    # a failure still fails, whatever the setting
    failing = [*results[:2], m("style_adherence", 0.5)]
    relaxed = QualityThresholds(could_not_judge_blocks=False)
    assert decide_job(failing, "generation", relaxed).verdict == Verdict.FAILED


def test_nan_is_not_a_pass_or_a_fail():
    decision = decide_job([m("aesthetic", math.nan)], "generation", required=[])
    assert decision.verdict == Verdict.COULD_NOT_JUDGE
    assert line(decision, "aesthetic").reason == "value is nan"


def test_nothing_to_judge_is_not_a_pass():
    decision = decide_job([], "quality")
    assert decision.verdict == Verdict.COULD_NOT_JUDGE
    assert "nothing was measured" in decision.explanation


def test_face_thresholds_hand_set_beats_calibrated_beats_default():
    results = [m("face_similarity", 0.65, "mika"), m("face_similarity", 0.65, "ren")]
    default = decide_job(results, "generation", required=[])
    assert default.verdict == Verdict.FAILED  # 0.65 < 0.70

    calibrated = decide_job(results, "generation", face_thresholds={"mika": 0.6, "ren": 0.6})
    assert line(calibrated, "face_similarity", "mika").verdict == Verdict.PASSED
    assert "gate >= 0.6, calibrated for mika -> passed" in calibrated.explanation

    hand_set = QualityThresholds(face_thresholds={"mika": 0.68})
    mixed = decide_job(
        results, "generation", hand_set, face_thresholds={"mika": 0.6, "ren": 0.6}, required=[]
    )
    assert line(mixed, "face_similarity", "mika").verdict == Verdict.FAILED
    assert line(mixed, "face_similarity", "mika").threshold_source == (
        "set for mika in QualityThresholds"
    )
    assert line(mixed, "face_similarity", "ren").verdict == Verdict.PASSED


def test_phase_gates_override_the_default_only_in_their_phase():
    thresholds = QualityThresholds(
        phase_gates={"animation": {"face_similarity": MetricGate(threshold=0.5)}}
    )
    keyframe_face = [m("face_similarity", 0.6, "mika")]
    in_animation = decide_job(keyframe_face, "animation", thresholds, required=[])
    in_generation = decide_job(keyframe_face, "generation", thresholds, required=[])
    assert in_animation.verdict == Verdict.PASSED
    assert line(in_animation, "face_similarity", "mika").threshold_source == (
        "animation phase gate"
    )
    assert in_generation.verdict == Verdict.FAILED


def test_phase_requirements_follow_the_studio_defaults():
    thresholds = QualityThresholds()
    assert thresholds.required_for("concept") == ["sheet_consistency"]
    assert thresholds.required_for(Phase.GENERATION) == [
        "face_similarity",
        "aesthetic",
        "style_adherence",
    ]
    assert thresholds.required_for("animation") == [
        "temporal_lpips",
        "motion_smoothness",
        "subject_consistency",
    ]
    assert thresholds.required_for("quality") == []
    sheet = decide_job([m("sheet_consistency", 0.84, "mika")], "concept")
    assert sheet.verdict == Verdict.FAILED  # default 0.85


def test_unknown_phase_is_named():
    with pytest.raises(ValueError, match="unknown phase 'compositing'"):
        decide_job([], "compositing")


# --- phase gates ----------------------------------------------------------------------------


def items(passed: int, failed: int = 0, unjudged: int = 0):
    out = [(f"cut-{i:02d}", Verdict.PASSED) for i in range(passed)]
    out += [(f"cut-f{i}", "failed") for i in range(failed)]
    out += [(f"cut-u{i}", Verdict.COULD_NOT_JUDGE) for i in range(unjudged)]
    return out


def test_gate_opens_at_exactly_eighty_percent_and_closes_below():
    for passed, failed in ((4, 1), (8, 2), (80, 20)):
        gate = decide_phase_gate(items(passed, failed), "generation")
        assert gate.decision == GateDecision.OPEN, (passed, failed)
        assert gate.pass_rate == pytest.approx(0.8)
    for passed, failed in ((3, 1), (7, 2), (79, 21)):
        gate = decide_phase_gate(items(passed, failed), "generation")
        assert gate.decision == GateDecision.CLOSED, (passed, failed)


def test_gate_explanation_names_failing_and_unjudged_items_and_keeps_all():
    gate = decide_phase_gate(items(6, 2, 1), "animation")
    assert gate.decision == GateDecision.CLOSED
    assert (gate.total, gate.passed, gate.failed, gate.could_not_judge) == (9, 6, 2, 1)
    assert len(gate.items) == 9
    assert "6 of 9 counted items passed (67%; below the 80% required)" in gate.explanation
    assert "Failed (2): cut-f0, cut-f1." in gate.explanation
    assert "Could not judge (1, counted as not passing): cut-u0." in gate.explanation


def test_could_not_judge_items_leave_the_rate_when_they_do_not_block():
    blocking = decide_phase_gate(items(4, 1, 2), "generation")
    assert blocking.decision == GateDecision.CLOSED
    assert (blocking.counted, blocking.pass_rate) == (7, pytest.approx(4 / 7))

    relaxed = decide_phase_gate(
        items(4, 1, 2), "generation", QualityThresholds(could_not_judge_blocks=False)
    )
    assert relaxed.decision == GateDecision.OPEN
    assert (relaxed.counted, relaxed.pass_rate) == (5, pytest.approx(0.8))
    assert "Could not judge (2, left out of the pass rate): cut-u0, cut-u1." in (
        relaxed.explanation
    )
    assert relaxed.total == 7


def test_gate_takes_job_decisions_and_a_per_phase_rate():
    passed = decide_job(GOOD_GENERATION, "generation")
    failed = decide_job([m("aesthetic", 1.0)], "generation")
    thresholds = QualityThresholds(phase_pass_rates={"generation": 0.5})
    gate = decide_phase_gate([("cut-1", passed), ("cut-2", failed)], "generation", thresholds)
    assert gate.required_rate == 0.5
    assert gate.decision == GateDecision.OPEN
    assert (
        decide_phase_gate([("cut-1", passed), ("cut-2", failed)], "animation", thresholds).decision
        == GateDecision.CLOSED
    )


def test_a_gate_with_nothing_to_count_stays_closed():
    assert decide_phase_gate([], "quality").decision == GateDecision.CLOSED
    relaxed = QualityThresholds(could_not_judge_blocks=False)
    only_unjudged = decide_phase_gate(items(0, 0, 3), "quality", relaxed)
    assert only_unjudged.decision == GateDecision.CLOSED
    assert only_unjudged.pass_rate is None
    assert "none of the 3 items could be judged" in only_unjudged.explanation


# --- the block ------------------------------------------------------------------------------


def test_block_defaults_are_the_studios():
    thresholds = QualityThresholds()
    expected = {
        "face_similarity": (">=", 0.70),
        "aesthetic": (">=", 5.5),
        "style_adherence": (">=", 0.85),
        "temporal_lpips": ("<=", 0.15),
        "motion_smoothness": (">=", 0.95),
        "subject_consistency": (">=", 0.90),
        "sheet_consistency": (">=", 0.85),
    }
    assert {k: (g.comparator, g.threshold) for k, g in thresholds.gates.items()} == expected
    assert thresholds.phase_pass_rate == 0.80
    assert thresholds.could_not_judge_blocks is True
    assert QualityThresholds.get_block_type_slug() == "anime-quality-thresholds"


def test_editing_one_gate_keeps_the_others():
    thresholds = QualityThresholds(gates={"aesthetic": {"threshold": 6.0}})
    assert thresholds.gates["aesthetic"].threshold == 6.0
    assert thresholds.gates["temporal_lpips"] == MetricGate(threshold=0.15, comparator="<=")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"required_metrics": {"keyframes": ["aesthetic"]}}, "unknown phase"),
        ({"required_metrics": {"generation": ["aesthtic"]}}, "'aesthtic'"),
        ({"face_thresholds": {"mika": 1.5}}, "mika"),
        ({"phase_pass_rate": 1.2}, "phase_pass_rate"),
        ({"phase_pass_rates": {"animation": -0.1}}, "animation"),
        ({"gates": {"aesthetic": {"threshold": 6, "comparator": ">"}}}, "comparator"),
    ],
)
def test_bad_settings_are_refused_with_what_is_wrong(settings, message):
    with pytest.raises(ValidationError, match=message):
        QualityThresholds(**settings)


def test_block_round_trips_through_prefect_and_drives_the_gates(
    prefect_harness, scoring_models, t1
):
    from prefect import flow

    from tasks.scoring.face_embedder import load_face_embedder
    from tasks.scoring.faces import embed_references, face_similarity

    from .conftest import canvas, face_tile

    QualityThresholds(gates={"aesthetic": {"threshold": 6.5}}, face_thresholds={"ross": 0.99}).save(
        "quality-test", overwrite=True
    )
    loaded = QualityThresholds.load("quality-test")
    assert loaded.gates["aesthetic"].threshold == 6.5

    @flow
    def judge_cut():
        embedder = load_face_embedder(scoring_models)
        refs = embed_references([canvas((face_tile(t1, "ross"), (1, 1)))], embedder)
        render = canvas((face_tile(t1, "ross"), (3, 4)))
        faces = face_similarity(render, {"ross": refs.embeddings}, embedder)
        results = [*faces, m("aesthetic", 6.0), m("style_adherence", 0.9)]
        job = decide_job(results, "generation", loaded)
        gate = decide_phase_gate([("cut-1", job)], "generation", loaded)
        return faces, job, gate

    faces, job, gate = judge_cut()
    assert faces[0].value == pytest.approx(1.0, abs=1e-4)
    assert line(job, "face_similarity", "ross").verdict == Verdict.PASSED  # 1.0 >= 0.99
    assert line(job, "aesthetic").verdict == Verdict.FAILED  # 6.0 < 6.5 from the saved block
    assert gate.decision == GateDecision.CLOSED
    assert "cut-1" in gate.explanation


def test_face_similarity_without_model_files_is_could_not_judge(tmp_path):
    from blocks.scoring import ScoringModels
    from db.briefs import CastBrief, CutBrief
    from tasks.scoring.judge import score_keyframe

    from .conftest import canvas

    refs = {"insightface:buffalo_l": [[1.0, 0.0]]}
    mika = CastBrief(character_id=1, slug="mika", name="Mika", face_references=refs)
    brief = CutBrief(project_id=1, project_slug="test", episode_id=1, episode_number=1,
                     scene_id=1, scene_number=1, cut_id=1, cut_number=1, cast=[mika])  # fmt: skip
    models = ScoringModels(face_root=str(tmp_path))
    [result] = score_keyframe(canvas(), brief, models, {"face_similarity"})
    assert result.value is None and result.subject == "mika"
    # The judge keeps the loader's message; the deleted @task prefixed "model weights missing: ".
    assert result.reason.startswith("InsightFace pack 'buffalo_l': folder not found")
    assert result.details["cause"] == "environment"  # no new seed fixes it
    decision = decide_job([result], "generation", required=["face_similarity"])
    assert decision.verdict == Verdict.COULD_NOT_JUDGE
    assert "could not judge (InsightFace pack 'buffalo_l'" in decision.explanation
