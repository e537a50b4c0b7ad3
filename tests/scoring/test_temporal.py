"""Clip metrics: temporal LPIPS, subject consistency, motion smoothness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blocks.scoring import ScoringModels
from tasks.scoring.loading.lpips import load_lpips
from tasks.scoring.temporal import (
    FlowBlendInterpolator,
    LinearBlendInterpolator,
    lpips_consecutive,
    motion_smoothness,
    subject_consistency,
    subject_consistency_from_features,
    temporal_lpips,
)
from tests.scoring.clips import background, disk_clip, jittery_motion, linear_motion

# --------------------------------------------------------------------------- temporal LPIPS


def test_identical_frames_have_zero_lpips(stand_in_models: ScoringModels) -> None:
    still = np.stack([background()] * 6)
    result = temporal_lpips(still, stand_in_models)
    assert result.value == pytest.approx(0.0, abs=1e-6)
    assert result.details["pairs"] == 5


def test_a_cut_in_the_clip_is_the_worst_pair(stand_in_models: ScoringModels) -> None:
    frames = linear_motion(10)
    frames[6:] = 255 - frames[6:]  # a hard cut between frames 5 and 6
    result = temporal_lpips(frames, stand_in_models)
    assert result.value > 0
    assert result.details["worst_pair"] == [5, 6]
    assert result.details["max"] == pytest.approx(max(result.details["per_pair"]), abs=1e-4)
    assert result.details["max"] > 2 * result.value


def test_batched_lpips_equals_the_library_on_each_pair(stand_in_models: ScoringModels) -> None:
    frames = jittery_motion(11)
    net = load_lpips(stand_in_models.model_copy(update={"batch_size": 4}))
    batched = lpips_consecutive(net, frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        naive = [float(net.module(x[i : i + 1], x[i + 1 : i + 2])) for i in range(len(x) - 1)]
    assert batched == pytest.approx(naive, rel=1e-4, abs=1e-6)


def test_loop_adds_the_seam_from_last_to_first(stand_in_models: ScoringModels) -> None:
    frames = linear_motion(8)
    result = temporal_lpips(frames, stand_in_models, loop=True)
    assert result.details["pairs"] == 8
    assert result.details["worst_pair"] == [7, 0]  # the disk jumps back across the frame


def test_single_frame_cannot_judge(stand_in_models: ScoringModels) -> None:
    result = temporal_lpips(linear_motion(1), stand_in_models)
    assert result.value is None and "at least 2" in (result.reason or "")


# --------------------------------------------------------------------------- subject consistency


def test_vbench_formula_clips_negative_similarities_to_zero() -> None:
    e1, e2 = torch.eye(2)
    value, per_frame = subject_consistency_from_features(torch.stack([e1, e1, e2, -e1]))
    # frame 1: (1 + 1)/2; frame 2: (0 + 0)/2; frame 3: (max(0, 0) + max(0, -1))/2
    assert per_frame.tolist() == [1.0, 0.0, 0.0]
    assert value == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_clip_is_less_consistent_than_ordered(
    stand_in_models: ScoringModels, seed: int
) -> None:
    ordered = linear_motion(24)
    shuffled = ordered[np.random.default_rng(seed).permutation(len(ordered))]
    a = subject_consistency(ordered, stand_in_models)
    b = subject_consistency(shuffled, stand_in_models)
    assert 0.0 <= b.value < a.value <= 1.0
    assert a.details["frames"] == 24 and len(a.details["per_frame"]) == 23


def test_subject_leaving_the_shot_is_the_worst_frame(stand_in_models: ScoringModels) -> None:
    frames = linear_motion(12)
    frames[7] = 255 - frames[7]
    result = subject_consistency(frames, stand_in_models)
    assert result.details["worst_frame"] in (7, 8)  # 8 compares with 7 as its previous frame


def test_dino_backbone_loads_from_the_weights_file(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "dino-tiny.pth"
    torch.save(vit.state_dict(), path)
    models = stand_in_models.model_copy(
        update={"subject_backbone": "dino", "dino_arch": "vit_tiny_patch16_224",
                "dino_weights": str(path)}
    )  # fmt: skip
    frames = linear_motion(8)
    result = subject_consistency(frames, models)
    assert result.model.startswith("dino vit_tiny_patch16_224")
    assert 0.0 < result.value <= 1.0
    shuffled = frames[[3, 0, 6, 1, 7, 2, 5, 4]]
    assert subject_consistency(shuffled, models).value < result.value


# --------------------------------------------------------------------------- motion smoothness


@pytest.mark.parametrize("interpolator", [LinearBlendInterpolator(), FlowBlendInterpolator()])
def test_linear_motion_is_smoother_than_jitter(interpolator) -> None:  # noqa: ANN001
    smooth = motion_smoothness(linear_motion(24), interpolator)
    jitter = motion_smoothness(jittery_motion(24), interpolator)
    assert jitter.value < smooth.value <= 1.0
    assert smooth.details["rebuilt_frames"] == 11
    assert smooth.model == interpolator.name


def test_still_clip_is_perfectly_smooth() -> None:
    assert motion_smoothness(np.stack([background()] * 7)).value == 1.0


def test_follows_vbench_formula_with_a_custom_interpolator() -> None:
    class Black:
        name = "black"

        def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
            return np.zeros_like(before)

    frames = linear_motion(9)
    result = motion_smoothness(frames, Black(), ScoringModels(batch_size=2))
    odd = frames[1:8:2].astype(float)  # the odd frames with even neighbours on both sides
    assert result.value == pytest.approx(1 - odd.mean() / 255, abs=1e-9)
    assert result.details["rebuilt_frames"] == 4


def test_interpolator_returning_the_wrong_shape_is_named() -> None:
    class Broken:
        name = "broken"

        def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
            return before[:, ::2]

    with pytest.raises(ValueError, match="broken"):
        motion_smoothness(linear_motion(5), Broken())


# --------------------------------------------------------------------------- inputs


def test_clip_as_array_pil_list_folder_and_animated_webp_agree(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    frames = disk_clip([20, 30, 40, 50, 60])
    folder = tmp_path / "frames"
    folder.mkdir()
    pictures = [Image.fromarray(f) for f in frames]
    for i, picture in enumerate(pictures):
        picture.save(folder / f"frame_{i + 1}.png")  # unpadded: frame_10 must sort after frame_9
    webp = tmp_path / "clip.webp"
    pictures[0].save(webp, save_all=True, append_images=pictures[1:], lossless=True)
    values = [temporal_lpips(x, stand_in_models).value for x in (frames, pictures, folder, webp)]
    assert values == pytest.approx([values[0]] * 4, abs=1e-6)


def test_frames_of_different_sizes_are_refused(stand_in_models: ScoringModels) -> None:
    with pytest.raises(ValueError, match="frame 1"):
        temporal_lpips([background(96), background(64)], stand_in_models)
