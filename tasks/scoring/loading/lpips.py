"""LPIPS (``lpips.LPIPS``) with its torchvision backbone read from a weights file.

The backbone (AlexNet, VGG16 or SqueezeNet 1.1 features) comes from ``lpips_backbone`` or the
torch hub cache, and is loaded here key for key, so a missing or partial file is an error and
never a randomly initialised network (whose distances are not perceptual). The linear layers
ship inside the ``lpips`` wheel.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.scoring.loading.device import Runtime, cached
from tasks.scoring.loading.downloads import fetch_or_fail, load_state_dict, torch_hub_checkpoints
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

if TYPE_CHECKING:
    import lpips

    from blocks.scoring import ScoringModels

# lpips_net -> (torchvision weights enum, torchvision model builder)
LPIPS_BACKBONES = {
    "alex": ("AlexNet_Weights", "alexnet"),
    "vgg": ("VGG16_Weights", "vgg16"),
    "squeeze": ("SqueezeNet1_1_Weights", "squeezenet1_1"),
}


@dataclass
class LpipsNet:
    """A loaded ``lpips.LPIPS`` and where it runs."""

    module: lpips.LPIPS
    runtime: Runtime
    name: str


def lpips_backbone_url(net: str) -> str:
    ensure_torchvision_importable()
    import torchvision.models

    return getattr(torchvision.models, LPIPS_BACKBONES[net][0]).IMAGENET1K_V1.url


def lpips_backbone_path(models: ScoringModels) -> Path:
    if models.lpips_backbone:
        return Path(models.lpips_backbone).expanduser()
    return torch_hub_checkpoints() / os.path.basename(lpips_backbone_url(models.lpips_net))


def _load_backbone(module: Any, net: str, path: Path, how: str) -> None:
    """Copy torchvision's ``features.N.*`` weights into lpips' ``sliceK.N.*``, all or nothing."""
    model = f"LPIPS {net} backbone"
    state = load_state_dict(path, model=model, how=how)
    features = {
        k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
    }
    wanted = {name.split(".", 1)[1]: name for name in module.net.state_dict()}
    missing = sorted(set(wanted) - set(features))
    if missing:
        problem = (
            f"not torchvision {LPIPS_BACKBONES[net][1]} weights (no features.{missing[0]}"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''})"
        )
        raise ModelUnavailable(model, str(path), how, problem=problem)
    try:
        module.net.load_state_dict({wanted[k]: features[k] for k in wanted}, strict=True)
    except RuntimeError as exc:
        problem = f"weights do not fit {net} ({str(exc).splitlines()[0][:300]})"
        raise ModelUnavailable(model, str(path), how, problem=problem) from exc


def load_lpips(models: ScoringModels) -> LpipsNet:
    """``lpips.LPIPS(net=lpips_net)`` with its backbone from ``lpips_backbone`` / the hub cache."""
    runtime = Runtime.of(models)
    net = models.lpips_net
    model = f"LPIPS {net} backbone"
    if models.lpips_pnet_rand:
        raise ModelUnavailable(
            model,
            "a backbone weights file (ScoringModels.lpips_pnet_rand is true)",
            "Set ScoringModels.lpips_pnet_rand to false; for tests, write random weights to a "
            "file and point ScoringModels.lpips_backbone at it.",
            problem="random backbone refused: its distances are not perceptual",
        )
    path = lpips_backbone_path(models)
    key = ("lpips", net, str(path), runtime.device)

    def build() -> Any:
        ensure_torchvision_importable()
        import lpips

        url = lpips_backbone_url(net)
        how = (
            f"Run `anime models fetch lpips`, or put torchvision's {os.path.basename(url)} "
            f"(from {url}) at {path} ($TORCH_HOME moves the torch hub cache), or set "
            "ScoringModels.lpips_backbone to a copy of it."
        )
        if not path.is_file():
            if models.lpips_backbone:  # an explicit path is never replaced by a download
                raise ModelUnavailable(model, str(path), how)
            fetch_or_fail(models, url, path, model=model, field="lpips_backbone", kit="lpips")
        try:
            with warnings.catch_warnings():
                # lpips 0.1.4 still passes torchvision's deprecated ``pretrained=`` flag.
                warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                # Built without weights, then filled from the file below.
                module = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        except Exception as exc:
            raise ModelUnavailable(
                model, str(path), how, problem=f"could not build ({exc})"
            ) from exc
        _load_backbone(module, net, path, how)
        return module.eval().requires_grad_(False).to(runtime.device)

    module = cached(key, build)
    return LpipsNet(module, runtime, f"lpips {net} v0.1")
