"""Tiny random-weight scoring models on disk, for tests, benchmarks and dry runs.

Not shipped with the package: the tests' fixtures and bench/ (scoring.py, episode_run.py)
import it from here. The models load through exactly the same code as the real weights;
their scores mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from blocks.scoring import ScoringModels
from tasks.scoring.loading.aesthetic_head import AestheticMLP
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

STAND_IN_CLIP = "anime-stand-in-clip"


def write_stand_in_models(folder: Path, *, seed: int = 0) -> ScoringModels:
    """Write tiny random-weight models to ``folder`` and return a block that loads them.

    For offline tests, benchmarks and dry runs of the scoring code: a small open_clip ViT
    (registered as ``anime-stand-in-clip``), an aesthetic head of the published shape whose
    output sits mid-scale, and random SqueezeNet 1.1 weights for LPIPS's backbone. They load
    through exactly the same code as the real weights; their scores mean nothing."""
    ensure_torchvision_importable()
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32,
                       "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2,
                     "layers": 1},
    }  # fmt: skip
    config_path = folder / f"{STAND_IN_CLIP}.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip = open_clip.create_model(STAND_IN_CLIP)
        head = AestheticMLP(config["embed_dim"])
        with torch.no_grad():
            # Random init answers ~0, which clamps to 1 for every image. The published head has
            # no activations, so with zero biases it is linear in the embedding: centre it
            # mid-scale and widen it so stand-in scores differ from image to image.
            for layer in head.layers:
                if isinstance(layer, torch.nn.Linear):
                    layer.bias.zero_()
            head.layers[7].weight.mul_(20.0)
            head.layers[7].bias.fill_(5.5)
    clip_path = folder / "stand-in-clip.pt"
    torch.save(clip.state_dict(), clip_path)
    head_path = folder / "stand-in-aesthetic.pth"
    torch.save(head.state_dict(), head_path)
    import torchvision.models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        squeeze = torchvision.models.squeezenet1_1(weights=None)
    lpips_path = folder / "stand-in-squeezenet1_1.pth"
    torch.save(squeeze.state_dict(), lpips_path)
    return ScoringModels(
        clip_model=STAND_IN_CLIP,
        clip_pretrained=str(clip_path),
        aesthetic_head=str(head_path),
        lpips_net="squeeze",
        lpips_backbone=str(lpips_path),
        allow_downloads=False,
    )
