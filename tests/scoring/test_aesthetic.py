"""Aesthetic score through the real CLIP and head loaders (stand-in weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blocks.scoring import ScoringModels
from db.briefs import CutBrief
from tasks.scoring.aesthetic import aesthetic, aesthetic_batch, aesthetic_of_frames
from tasks.scoring.judge import score_keyframe
from tasks.scoring.loading.aesthetic_head import AestheticMLP
from tests.scoring.clips import background, linear_motion


@pytest.fixture
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    noise = [rng.integers(0, 256, (80, 120, 3), dtype=np.uint8) for _ in range(3)]
    flat = np.full((64, 64, 3), 200, dtype=np.uint8)
    return [*noise, flat, background(), *linear_motion(5)]


def test_scores_lie_on_the_one_to_ten_scale_and_differ_between_images(
    stand_in_models: ScoringModels, images: list[np.ndarray]
) -> None:
    results = aesthetic_batch(images, stand_in_models)
    values = [r.value for r in results]
    assert all(r.metric == "aesthetic" and r.measured for r in results)
    assert all(1.0 <= v <= 10.0 for v in values)
    assert max(values) - min(values) > 1e-3  # the stand-in head does tell images apart


def test_batched_equals_one_by_one(
    stand_in_models: ScoringModels, images: list[np.ndarray]
) -> None:
    small_batches = stand_in_models.model_copy(update={"batch_size": 3})
    batched = [r.value for r in aesthetic_batch(images, small_batches)]
    single = [aesthetic(image, stand_in_models).value for image in images]
    assert batched == pytest.approx(single, abs=1e-4)


def test_path_pil_and_array_inputs_score_the_same(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    array = background()
    path = tmp_path / "keyframe.png"
    Image.fromarray(array).save(path)
    values = [
        aesthetic(x, stand_in_models).value
        for x in (array, Image.fromarray(array), path, str(path))
    ]
    assert values == pytest.approx([values[0]] * 4, abs=1e-6)


def test_out_of_range_head_output_is_clamped_and_raw_kept(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    head = AestheticMLP(64)
    with torch.no_grad():
        head.layers[7].bias.fill_(42.0)
    path = tmp_path / "generous-head.pth"
    torch.save(head.state_dict(), path)
    generous = stand_in_models.model_copy(update={"aesthetic_head": str(path)})
    result = aesthetic(background(), generous)
    assert result.value == 10.0
    assert result.details["raw"] > 10.0 and result.details["clamped"] is True


def test_clip_frames_give_mean_and_weakest_frame(stand_in_models: ScoringModels) -> None:
    frames = linear_motion(6)
    per_frame = [r.value for r in aesthetic_batch(list(frames), stand_in_models)]
    result = aesthetic_of_frames(frames, stand_in_models)
    assert result.value == pytest.approx(float(np.mean(per_frame)), abs=1e-4)
    assert result.details["worst_frame"] == int(np.argmin(per_frame))


def test_judge_turns_missing_weights_into_could_not_judge(tmp_path: Path, brief: CutBrief) -> None:
    models = ScoringModels(aesthetic_head=str(tmp_path / "gone.pth"), allow_downloads=False,
                           clip_pretrained=str(tmp_path / "gone.pt"))  # fmt: skip
    [result] = score_keyframe(background(), brief, models, {"aesthetic"})
    assert result.value is None
    assert "ScoringModels.clip_pretrained" in (result.reason or "")
