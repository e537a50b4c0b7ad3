"""DINO ViT backbones (timm), VBench's feature model for subject consistency."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from blocks.model_files import DINO_WEIGHTS_URL
from tasks.scoring.images import as_array
from tasks.scoring.loading.device import Runtime, batches, cached
from tasks.scoring.loading.downloads import fetch_or_fail, load_state_dict, torch_hub_checkpoints
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels


@dataclass
class DinoEmbedder:
    """DINO ViT CLS features with VBench's preprocessing (shorter side 224, no crop)."""

    model: torch.nn.Module
    runtime: Runtime
    name: str
    short_side: int = 224

    @property
    def patch(self) -> int:
        size = getattr(getattr(self.model, "patch_embed", None), "patch_size", 16)
        return int(size[0] if isinstance(size, tuple | list) else size)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406], device=self.runtime.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=self.runtime.device).view(1, 3, 1, 1)
        rows = []
        for part in batches(len(images), self.runtime.batch_size):
            arrays = np.stack([as_array(im) for im in images[part]])
            x = torch.from_numpy(arrays).to(self.runtime.device).permute(0, 3, 1, 2).float() / 255
            h, w = x.shape[-2:]
            scale = self.short_side / min(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=False)
            # DINO's own ViT (VBench loads it through torch.hub) embeds patches with a stride-16
            # convolution, which drops the last width % 16 columns and height % 16 rows; timm
            # asserts divisibility instead, so crop the same pixels DINO ignores.
            x = x[
                ...,
                : x.shape[-2] // self.patch * self.patch,
                : x.shape[-1] // self.patch * self.patch,
            ]
            with self.runtime.autocast():
                features = self.model((x - mean) / std)
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        if not rows:
            return torch.empty(0, 0)
        return torch.cat(rows)


def dino_weights_path(models: ScoringModels) -> Path:
    if models.dino_weights:
        return Path(models.dino_weights).expanduser()
    return torch_hub_checkpoints() / os.path.basename(DINO_WEIGHTS_URL)


def _dino_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    # Full DINO training checkpoints keep the backbone under teacher/student with prefixes.
    for branch in ("teacher", "student"):
        if isinstance(state.get(branch), dict):
            state = state[branch]
            break
    cleaned = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("backbone.")
        if not k.startswith("head."):
            cleaned[k] = v
    return cleaned


def load_dino(models: ScoringModels) -> DinoEmbedder:
    """DINO ViT backbone (timm architecture ``dino_arch``) from ``dino_weights``."""
    runtime = Runtime.of(models)
    path = dino_weights_path(models)
    model = f"DINO {models.dino_arch}"

    def build() -> torch.nn.Module:
        ensure_torchvision_importable()
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn

        how = (
            f"Download {DINO_WEIGHTS_URL} to {path}, or set ScoringModels.dino_weights to the "
            "file (or set ScoringModels.subject_backbone to 'clip')."
        )
        if not path.is_file():
            if models.dino_weights:
                raise ModelUnavailable(model, str(path), how)
            fetch_or_fail(
                models, DINO_WEIGHTS_URL, path, model=model, field="dino_weights", kit="dino"
            )
        try:
            net = timm.create_model(
                models.dino_arch, pretrained=False, num_classes=0, dynamic_img_size=True
            )
        except Exception as exc:
            raise ModelUnavailable(
                model,
                f"timm architecture {models.dino_arch!r}",
                "Set ScoringModels.dino_arch to a timm ViT name.",
                problem=f"unknown architecture ({exc})",
            ) from exc
        state = _dino_state(load_state_dict(path, model=model, how=how))
        try:
            net.load_state_dict(checkpoint_filter_fn(state, net), strict=True)
        except Exception as exc:
            problem = f"weights do not fit {models.dino_arch} ({str(exc).splitlines()[0][:300]})"
            raise ModelUnavailable(model, str(path), how, problem=problem) from exc
        return net.eval().requires_grad_(False).to(runtime.device)

    net = cached(("dino", models.dino_arch, str(path), runtime.device), build)
    return DinoEmbedder(net, runtime, f"dino {models.dino_arch}")
