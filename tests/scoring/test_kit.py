"""The model kit: `anime models status | fetch | check`, offline and from a local folder.
Nothing is downloaded: the offline path is the one tested."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from anime.cli import app
from blocks.scoring import ScoringModels
from tasks.scoring import kit
from tasks.scoring.check import run_check


def anime(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_offline_fetch_prints_each_file_its_url_and_target(offline_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(offline_home))  # no ~/.insightface from this machine
    out = anime("models", "fetch", code=1)
    models = offline_home / "cache" / "tower-anime" / "models"
    assert "Cannot download (HF_HUB_OFFLINE is set)" in out
    head = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
    assert head + "sac%2Blogos%2Bava1-l14-linearMSE.pth" in out
    assert f"put at {models / 'sac+logos+ava1-l14-linearMSE.pth'}" in out
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in out
    assert str(offline_home / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in out
    clip = models / "clip" / "timm--vit_large_patch14_clip_224.openai"
    assert f"put at {clip / 'open_clip_model.safetensors'}" in out
    assert "buffalo_l.zip" in out
    assert f"unzip into {offline_home / '.insightface' / 'models' / 'buffalo_l'}" in out
    assert "dino" not in out  # the default block scores subject consistency with CLIP
    out = anime("models", "status", "--no-load")
    assert out.count("MISSING") >= 5


def test_fetch_from_a_folder_places_files_where_the_block_looks(
    offline_home: Path, stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    shutil.copy(stand_in_models.aesthetic_head, usb / "sac+logos+ava1-l14-linearMSE.pth")
    out = anime("models", "fetch", "aesthetic", "--from", str(usb))
    target = offline_home / "cache" / "tower-anime" / "models" / "sac+logos+ava1-l14-linearMSE.pth"
    assert f"-> {target}" in out and target.is_file()
    out = anime("models", "status", "aesthetic")
    assert f"{target}: present, " in out and "sha256 " in out
    assert "loads: yes" in out
    assert "already in place" in anime("models", "fetch", "aesthetic", "--from", str(usb))


def test_a_file_that_does_not_match_its_published_checksum_is_not_placed(
    offline_home: Path, stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    torch.save({"features.0.weight": torch.zeros(1)}, usb / "alexnet-owt-7be5be79.pth")
    out = anime("models", "fetch", "lpips", "--from", str(usb), code=1)
    assert "does not match the published 7be5be79" in out
    assert not (
        offline_home / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    ).exists()
    out = anime("models", "fetch", "nonsense", code=1)
    assert "unknown model(s) ['nonsense']" in out


def test_status_of_a_block_with_local_files_says_what_loads(stand_in_models: ScoringModels) -> None:
    entries = {e.name: e for e in kit.kit(stand_in_models)}
    clip = entries["clip"]
    assert clip.present and clip.files[0].target == Path(stand_in_models.clip_pretrained)
    assert kit.loads(clip) == "yes"
    assert kit.loads(entries["lpips"]) == "yes"
    assert kit.loads(entries["dino"]).startswith("no: ")


def test_check_runs_a_tiny_clip_through_every_metric(
    stand_in_models: ScoringModels, tmp_path: Path
) -> None:
    no_faces = stand_in_models.model_copy(update={"face_root": str(tmp_path)})
    lines, ok = run_check(no_faces)
    text = "\n".join(lines)
    for metric in ("aesthetic", "style_adherence", "temporal_lpips", "motion_smoothness",
                   "subject_consistency"):  # fmt: skip
        assert f"{metric}: " in text and f"{metric}: could not judge" not in text
    assert "face_similarity / sheet_consistency: could not judge" in text
    assert not ok
