"""LPIPS (``lpips.LPIPS``) with its torchvision backbone from the torch hub cache."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tasks.scoring.loading.device import Runtime, cached
from tasks.scoring.loading.downloads import download_blocker, torch_hub_checkpoints
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

if TYPE_CHECKING:
    import lpips

    from blocks.scoring import ScoringModels

_LPIPS_BACKBONES = {
    "alex": "AlexNet_Weights",
    "vgg": "VGG16_Weights",
    "squeeze": "SqueezeNet1_1_Weights",
}


@dataclass
class LpipsNet:
    """A loaded ``lpips.LPIPS`` and where it runs."""

    module: lpips.LPIPS
    runtime: Runtime
    name: str


def _lpips_backbone_file(net: str) -> tuple[str, Path]:
    import torchvision.models

    weights = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1
    return weights.url, torch_hub_checkpoints() / os.path.basename(weights.url)


def load_lpips(models: ScoringModels) -> LpipsNet:
    """``lpips.LPIPS(net=lpips_net)``; its torchvision backbone comes from the torch hub cache."""
    runtime = Runtime.of(models)
    net = models.lpips_net
    key = ("lpips", net, models.lpips_pnet_rand, runtime.device)

    def build() -> Any:
        ensure_torchvision_importable()
        import lpips

        model = f"LPIPS {net} backbone"
        if not models.lpips_pnet_rand:
            url, target = _lpips_backbone_file(net)
            if not target.is_file():
                how = (
                    f"Put torchvision's {target.name} (from {url}) in the torch hub cache folder "
                    f"{target.parent} (TORCH_HOME moves it), or set "
                    "ScoringModels.lpips_pnet_rand for a random backbone (tests only)."
                )
                blocker = download_blocker(models, url)
                if blocker:
                    raise ModelUnavailable(
                        model, str(target), how, problem=f"not found ({blocker})"
                    )
        # A random backbone is seeded so its distances repeat from run to run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            try:
                with warnings.catch_warnings():
                    # lpips 0.1.4 still passes torchvision's deprecated ``pretrained=`` flag.
                    warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                    module = lpips.LPIPS(net=net, pnet_rand=models.lpips_pnet_rand, verbose=False)
            except Exception as exc:
                raise ModelUnavailable(
                    model,
                    str(torch_hub_checkpoints()),
                    "Check the torch hub cache, or set ScoringModels.lpips_pnet_rand (tests only).",
                    problem=f"could not load ({exc})",
                ) from exc
        return module.eval().requires_grad_(False).to(runtime.device)

    module = cached(key, build)
    suffix = " (random backbone)" if models.lpips_pnet_rand else ""
    return LpipsNet(module, runtime, f"lpips {net} v0.1{suffix}")
