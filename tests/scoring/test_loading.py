"""Model loading: cached per process, and missing weights are one clear, fast error."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from blocks.model_files import AESTHETIC_HEAD_URL
from blocks.scoring import ScoringModels
from tasks.scoring.loading.aesthetic_head import load_aesthetic_head
from tasks.scoring.loading.clip import load_clip
from tasks.scoring.loading.device import resolve_device
from tasks.scoring.loading.dino import load_dino
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.lpips import load_lpips

FAST_S = 2.0


def _fails_fast(load: Callable[[ScoringModels], object], models: ScoringModels) -> ModelUnavailable:
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        load(models)
    assert time.monotonic() - started < FAST_S
    return caught.value


def test_clip_loads_once_per_process_and_config(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    import shutil

    first = load_clip(stand_in_models)
    again = load_clip(stand_in_models.model_copy())
    assert again.model is first.model
    assert load_lpips(stand_in_models).module is load_lpips(stand_in_models).module
    copy = shutil.copy(stand_in_models.lpips_backbone, tmp_path / "squeezenet1_1.pth")
    other_lpips = stand_in_models.model_copy(update={"lpips_backbone": str(copy)})
    assert load_lpips(other_lpips).module is not load_lpips(stand_in_models).module


def test_bogus_clip_checkpoint_path_names_the_path_and_field(tmp_path: Path) -> None:
    bogus = tmp_path / "nowhere" / "clip.safetensors"
    models = ScoringModels(clip_pretrained=str(bogus), allow_downloads=False)
    error = _fails_fast(load_clip, models)
    assert str(bogus) in str(error)
    assert "ScoringModels.clip_pretrained" in str(error)


def test_unknown_pretrained_tag_lists_the_known_ones(offline_home: Path) -> None:
    models = ScoringModels(clip_pretrained="laion-imaginary", allow_downloads=False)
    error = _fails_fast(load_clip, models)
    assert "unknown pretrained tag" in str(error)
    assert "'openai'" in str(error)


def test_default_openai_clip_offline_says_where_weights_go(offline_home: Path) -> None:
    models = ScoringModels(clip_cache_dir=str(offline_home / "hf"), allow_downloads=False)
    error = _fails_fast(load_clip, models)
    message = str(error)
    assert "ViT-L-14" in message
    assert str(offline_home / "hf") in message
    assert "huggingface.co/timm/vit_large_patch14_clip_224.openai" in message
    assert "ScoringModels.clip_pretrained" in message


def test_unknown_clip_architecture_is_named() -> None:
    error = _fails_fast(load_clip, ScoringModels(clip_model="ViT-Imaginary-99"))
    assert "ViT-Imaginary-99" in str(error)
    assert "ScoringModels.clip_model" in str(error)


def test_checkpoint_for_another_architecture_is_a_clear_error(
    stand_in_models: ScoringModels,
) -> None:
    models = ScoringModels(clip_model="ViT-B-32", clip_pretrained=stand_in_models.clip_pretrained)
    with pytest.raises(ModelUnavailable) as caught:  # builds a ViT-B/32 first: not timed
        load_clip(models)
    error = caught.value
    assert "checkpoint does not load" in str(error)
    assert stand_in_models.clip_pretrained in str(error)


def test_missing_aesthetic_head_at_default_location_names_file_and_url(
    offline_home: Path,
) -> None:
    error = _fails_fast(load_aesthetic_head, ScoringModels(allow_downloads=False))
    expected = offline_home / "cache" / "tower-anime" / "models"
    assert str(expected / "sac+logos+ava1-l14-linearMSE.pth") in str(error)
    assert AESTHETIC_HEAD_URL in str(error)
    assert "ScoringModels.aesthetic_head" in str(error)


def test_aesthetic_head_that_is_not_the_published_mlp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "head.pth"
    torch.save({"fc.weight": torch.zeros(1, 768)}, path)
    error = _fails_fast(load_aesthetic_head, ScoringModels(aesthetic_head=str(path)))
    assert "layers.0.weight" in str(error)
    path.write_bytes(b"not a checkpoint")
    error = _fails_fast(load_aesthetic_head, ScoringModels(aesthetic_head=str(path)))
    assert "unreadable" in str(error)


def test_lpips_backbone_missing_offline_says_which_file_goes_where(offline_home: Path) -> None:
    error = _fails_fast(load_lpips, ScoringModels(lpips_net="alex", allow_downloads=False))
    folder = offline_home / "torch" / "hub" / "checkpoints"
    assert "alexnet-owt-7be5be79.pth" in str(error)
    assert str(folder) in str(error)
    assert "ScoringModels.lpips_backbone" in str(error)
    assert "anime models fetch lpips" in str(error)


def test_missing_dino_weights_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "dino.pth"
    models = ScoringModels(subject_backbone="dino", dino_weights=str(path))
    error = _fails_fast(load_dino, models)
    assert str(path) in str(error)
    assert "ScoringModels.dino_weights" in str(error)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_auto_is_cpu_without_gpu_and_cuda_is_refused() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ModelUnavailable, match="ScoringModels.device"):
        resolve_device("cuda")


def test_model_unavailable_survives_pickling_as_prefect_stores_it(tmp_path: Path) -> None:
    import pickle

    error = _fails_fast(load_aesthetic_head, ScoringModels(aesthetic_head=str(tmp_path / "x.pth")))
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.expected == str(tmp_path / "x.pth")
