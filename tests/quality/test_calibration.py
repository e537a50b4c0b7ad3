"""Per-character face thresholds from the reference library."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.scoring.calibration import CalibrationReport, calibrate_cast, calibrate_character
from tasks.scoring.faces import embed_references

from .conftest import T1_FACES, canvas, face_tile

VIEWS = [
    {"shift": (0, 0)},
    {"shift": (2, -2)},
    {"shift": (-2, 1), "gain": 1.1},
    {"shift": (1, 3), "gain": 0.9},
    {"shift": (-3, -2)},
]


@pytest.fixture(scope="module")
def library(t1, embedder) -> dict[str, np.ndarray]:
    """Five reference views of each of the six people in t1, embedded for real."""
    out = {}
    for who in T1_FACES:
        images = [
            canvas((face_tile(t1, who, **view), (1 + i % 2, 1 + i % 3)))
            for i, view in enumerate(VIEWS)
        ]
        found = embed_references(images, embedder)
        assert found.without_face == []
        out[who] = found.embeddings
    return out


def test_threshold_lies_between_same_and_other_character_scores(library):
    others = {who: refs for who, refs in library.items() if who != "ross"}
    report = calibrate_character("ross", library["ross"], others)
    assert isinstance(report, CalibrationReport)
    assert report.references == 5
    assert report.same_character.count == 5  # each reference against the other four
    assert report.other_characters.count == 25  # five other people, five views each
    assert report.separable is True
    assert report.other_characters.max < report.suggested_threshold < report.same_character.min
    assert report.suggested_threshold == pytest.approx(
        (report.other_characters.max + report.same_character.min) / 2
    )
    assert (report.false_accepts, report.false_rejects) == (0, 0)
    assert set(report.closest_others) == set(others)
    closest = list(report.closest_others.values())
    assert closest == sorted(closest, reverse=True)
    assert closest[0] == pytest.approx(report.other_characters.max)
    assert (
        "ross" in report.explanation and f"{report.suggested_threshold:.4f}" in report.explanation
    )


def test_distribution_statistics_are_reported(library):
    report = calibrate_character("joey", library["joey"], {"ross": library["ross"]})
    same = report.same_character
    assert same.min <= same.p05 <= same.p25 <= same.p50 <= same.p75 <= same.p95 <= same.max
    assert same.std >= 0 and same.min <= same.mean <= same.max
    round_trip = CalibrationReport.model_validate_json(report.model_dump_json())
    assert round_trip == report


def test_mean_reduction_is_calibrated_with_mean_scores(library):
    others = {"rachel": library["rachel"], "phoebe": library["phoebe"]}
    by_max = calibrate_character("monica", library["monica"], others, reduce="max")
    by_mean = calibrate_character("monica", library["monica"], others, reduce="mean")
    assert by_mean.reduction == "mean"
    assert by_mean.same_character.mean < by_max.same_character.mean


def _unit_rows(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_overlapping_distributions_get_the_lowest_balanced_error():
    rng = np.random.default_rng(3)
    own = _unit_rows(np.array([1.0, 0, 0, 0]) + rng.normal(0, 0.45, (8, 4)))
    lookalike = _unit_rows(np.array([1.0, 0, 0, 0]) + rng.normal(0, 0.6, (6, 4)))
    stranger = _unit_rows(np.array([0, 1.0, 0, 0]) + rng.normal(0, 0.3, (6, 4)))
    report = calibrate_character("mika", own, {"lookalike": lookalike, "stranger": stranger})
    assert report.separable is False
    threshold = report.suggested_threshold

    # Recompute the scores the report describes and check that no threshold does better.
    genuine = [max(np.delete(own @ own[i], i)) for i in range(len(own))]
    impostor = [max(own @ row) for row in np.vstack([lookalike, stranger])]
    genuine, impostor = np.array(genuine), np.array(impostor)
    assert report.false_accepts == int(np.sum(impostor >= threshold))
    assert report.false_rejects == int(np.sum(genuine < threshold))

    def balanced_error(t):
        return np.mean(impostor >= t) + np.mean(genuine < t)

    grid = np.linspace(-1, 1.001, 4001)
    assert balanced_error(threshold) <= min(balanced_error(t) for t in grid) + 1e-12
    assert report.false_accepts + report.false_rejects > 0


def test_too_few_references_or_no_other_characters_give_no_threshold(library):
    single = calibrate_character("ross", library["ross"][:1], {"joey": library["joey"]})
    assert single.suggested_threshold is None
    assert "at least two" in single.explanation
    alone = calibrate_character("ross", library["ross"], {})
    assert alone.suggested_threshold is None
    assert "keep the project default" in alone.explanation
    assert alone.same_character.count == 5 and alone.other_characters.count == 0


def test_references_from_different_models_are_refused(library):
    with pytest.raises(ValueError, match="'joey' have 128 dimensions"):
        calibrate_character("ross", library["ross"], {"joey": np.ones((3, 128))})


def test_the_whole_cast_is_calibrated_each_against_the_others(library):
    reports = calibrate_cast(library)
    assert list(reports) == list(library)
    for slug, report in reports.items():
        assert report.character == slug and slug not in report.closest_others
        assert report.other_characters.count == 25
        assert report.other_characters.max < report.suggested_threshold < report.same_character.min
