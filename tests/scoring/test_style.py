"""Style adherence against the story bible's style reference images."""

from __future__ import annotations

import numpy as np
import pytest

from blocks.scoring import ScoringModels
from tasks.scoring.style import style_adherence, style_adherence_batch
from tests.scoring.clips import background, linear_motion


def _very_different() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)


def test_an_image_matches_itself_better_than_something_else(
    stand_in_models: ScoringModels,
) -> None:
    image = background()
    itself = style_adherence(image, [image], stand_in_models)
    other = style_adherence(image, [_very_different()], stand_in_models)
    assert itself.value == pytest.approx(1.0, abs=1e-4)
    assert other.value < itself.value - 1e-3


def test_value_is_the_mean_over_references_and_max_names_the_closest(
    stand_in_models: ScoringModels,
) -> None:
    image = background()
    result = style_adherence(image, [_very_different(), image], stand_in_models)
    per_ref = result.details["per_reference"]
    assert result.value == pytest.approx(np.mean(per_ref), abs=1e-3)
    assert result.details["max"] == pytest.approx(1.0, abs=1e-4)
    assert result.details["best_reference"] == 1
    assert result.details["references"] == 2


def test_batch_equals_single(stand_in_models: ScoringModels) -> None:
    images = [*linear_motion(4), _very_different()]
    refs = [background(), _very_different()]
    batched = style_adherence_batch(
        images, refs, stand_in_models.model_copy(update={"batch_size": 2})
    )
    single = [style_adherence(i, refs, stand_in_models) for i in images]
    assert [r.value for r in batched] == pytest.approx([r.value for r in single], abs=1e-4)


def test_no_style_references_cannot_judge(stand_in_models: ScoringModels) -> None:
    result = style_adherence(background(), [], stand_in_models)
    assert result.value is None
    assert "no style reference" in (result.reason or "")
