"""No score from weights that were not loaded from a real file, whatever the path; the metrics
take any frame size; a metric that raises is could-not-judge; values stay in range."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from blocks.scoring import ScoringModels
from db.briefs import CutBrief
from tasks.scoring.judge import clip_loops, score_clip, score_keyframe
from tasks.scoring.loading.clip import load_clip
from tasks.scoring.loading.dino import load_dino
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.lpips import load_lpips
from tests.scoring.clips import linear_motion
from tests.scoring.stand_in_models import STAND_IN_CLIP


def _stand_in_config() -> dict:
    import open_clip

    return open_clip.get_model_config(STAND_IN_CLIP)


def _local_dir(tmp_path: Path, stand_in_models: ScoringModels, weights_name: str | None) -> Path:
    folder = tmp_path / "clip-folder"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": _stand_in_config()}))
    if weights_name:
        shutil.copy(stand_in_models.clip_pretrained, folder / weights_name)
    return folder


@pytest.mark.parametrize("weights_name", [None, "ViT-L-14.pt"])
def test_local_dir_clip_without_weights_it_reads_is_an_error_not_random_weights(
    tmp_path: Path, stand_in_models: ScoringModels, weights_name: str | None
) -> None:
    folder = _local_dir(tmp_path, stand_in_models, weights_name)
    models = ScoringModels(clip_model=f"local-dir:{folder}", allow_downloads=False)
    with pytest.raises(ModelUnavailable) as caught:
        load_clip(models)
    message = str(caught.value)
    assert "no weights open_clip reads" in message
    assert "open_clip_model.safetensors" in message
    if weights_name:
        assert weights_name in message  # says why that file was not taken


def test_local_dir_clip_with_weights_scores_as_the_same_file_does(
    tmp_path: Path, stand_in_models: ScoringModels
) -> None:
    folder = _local_dir(tmp_path, stand_in_models, "open_clip_pytorch_model.bin")
    models = ScoringModels(clip_model=f"local-dir:{folder}", allow_downloads=False)
    frames = list(linear_motion(2))
    from_folder = load_clip(models).embed(frames)
    from_file = load_clip(stand_in_models).embed(frames)
    assert torch.allclose(from_folder, from_file, atol=1e-5)


def _activations(model: torch.nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.visual.modules() if "GELU" in type(m).__name__}


def test_activation_follows_the_checkpoint_not_the_architecture_name(
    tmp_path: Path, stand_in_models: ScoringModels
) -> None:
    # An OpenAI-trained checkpoint from a Hugging Face snapshot: its config says QuickGELU.
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    weights = shutil.copy(stand_in_models.clip_pretrained, snapshot / "open_clip_model.bin")
    config = {"model_cfg": {**_stand_in_config(), "quick_gelu": True}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    quick = load_clip(stand_in_models.model_copy(update={"clip_pretrained": str(weights)}))
    assert _activations(quick.model) == {"QuickGELU"}
    assert "QuickGELU" in quick.name
    plain = load_clip(stand_in_models)  # no config beside it: the architecture's GELU
    assert _activations(plain.model) == {"GELU"}
    frames = list(linear_motion(2))
    assert not torch.allclose(quick.embed(frames), plain.embed(frames), atol=1e-4)


def test_random_lpips_backbone_is_refused(stand_in_models: ScoringModels) -> None:
    with pytest.raises(ModelUnavailable, match="random backbone refused"):
        load_lpips(stand_in_models.model_copy(update={"lpips_pnet_rand": True}))


def test_lpips_backbone_file_of_another_network_is_refused(
    stand_in_models: ScoringModels,
) -> None:
    with pytest.raises(ModelUnavailable, match="not torchvision alexnet weights"):
        load_lpips(stand_in_models.model_copy(update={"lpips_net": "alex"}))


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory: pytest.TempPathFactory, stand_in_models: ScoringModels):
    import timm

    net = timm.create_model("test_vit", pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("dino") / "dino.pth"
    torch.save(net.state_dict(), path)
    return stand_in_models.model_copy(
        update={"subject_backbone": "dino", "dino_arch": "test_vit", "dino_weights": str(path)}
    )


@pytest.mark.parametrize("size", [(576, 1024), (1024, 576), (480, 854), (720, 1280)])
def test_dino_and_clip_take_any_aspect_ratio(
    tiny_dino: ScoringModels, brief: CutBrief, size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, *size, 3), dtype=np.uint8), 3, axis=0)
    assert load_dino(tiny_dino).embed(list(frames)).shape[0] == 3
    for models in (tiny_dino, tiny_dino.model_copy(update={"subject_backbone": "clip"})):
        [result] = score_clip(frames, brief, models, {"subject_consistency"})
        assert result.measured, result.reason
        assert result.value <= 1.0  # identical frames: exactly 1, never 1.0000001


def test_an_exception_inside_a_metric_is_could_not_judge_with_its_reason(
    stand_in_models: ScoringModels, brief: CutBrief
) -> None:
    float_frames = np.zeros((4, 32, 32, 3), np.float32)  # a clip metric's input check raises
    results = score_clip(
        float_frames, brief, stand_in_models, {"temporal_lpips", "motion_smoothness"}
    )
    assert [r.metric for r in results] == ["temporal_lpips", "motion_smoothness"]
    for result in results:
        assert result.value is None
        assert "FrameInputError" in result.reason and "dtype float32" in result.reason
        assert result.details["cause"] == "environment"
    [keyframe] = score_keyframe("/nowhere/keyframe.png", brief, stand_in_models, {"aesthetic"})
    assert keyframe.value is None and "/nowhere/keyframe.png" in keyframe.reason


def test_loop_templates_score_the_seam(stand_in_models: ScoringModels, brief: CutBrief) -> None:
    pan = linear_motion(8)
    looping = brief.model_copy(
        update={"project_settings": {"animation_template": "animatediff_loop"}}
    )
    straight = brief.model_copy(update={"project_settings": {"animation_template": "svd_img2vid"}})
    opened = looping.model_copy(update={"overrides": {"closed_loop": False}})
    assert clip_loops(looping) and not clip_loops(straight) and not clip_loops(opened)
    # A run's --template decides, not the cut's pin: it is what the clip was rendered with.
    assert not clip_loops(looping, "svd_img2vid") and clip_loops(straight, "animatediff_loop")
    [with_seam] = score_clip(pan, looping, stand_in_models, {"temporal_lpips"})
    [without] = score_clip(pan, straight, stand_in_models, {"temporal_lpips"})
    assert with_seam.details["loop"] and with_seam.details["pairs"] == 8
    assert not without.details["loop"] and without.details["pairs"] == 7
    # The seam jumps from one side of the pan to the other: it is the worst pair.
    assert with_seam.details["worst_pair"] == [7, 0]
    assert with_seam.value > without.value


def test_style_adherence_of_an_image_with_itself_is_at_most_one(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    from PIL import Image

    from tasks.scoring.style import style_adherence

    path = tmp_path / "style.png"
    Image.fromarray(linear_motion(1)[0]).save(path)
    result = style_adherence(str(path), [str(path)], stand_in_models)
    assert 0.999 < result.value <= 1.0


def test_an_openai_style_torchscript_release_loads_with_quickgelu(
    tmp_path: Path, stand_in_models: ScoringModels
) -> None:
    import open_clip

    model = open_clip.create_model(STAND_IN_CLIP, pretrained=stand_in_models.clip_pretrained)
    release = tmp_path / "openai-release.pt"
    torch.jit.save(torch.jit.script(model), release)
    loaded = load_clip(stand_in_models.model_copy(update={"clip_pretrained": str(release)}))
    assert _activations(loaded.model) == {"QuickGELU"}
    assert "QuickGELU" in loaded.name
