"""The scoring models' real architectures with random weights, written to files for bench/scoring.

Throughput depends on the architecture, not the weights, so the benchmark builds each metric's
shipped architecture, saves it where a real download would sit (a file the block names) and
loads it back through tasks/scoring/loading/ and the face embedders, exactly as the real
weights would be. The loaders refuse models built in memory; these come from files.

* CLIP ViT-L/14 (open_clip, QuickGELU as OpenAI's release), the LAION aesthetic head (the
  published MLP, 768 in), DINO ViT-B/16 (timm ``vit_base_patch16_224.dino``), torchvision
  AlexNet for LPIPS: the real graphs.
* The face models are ONNX files of the real input/output signatures at a realistic cost, not
  the real graphs (rebuilding InsightFace's IResNet-50 and SCRFD-10G is out of scope here):
  the detector is a ResNet-18 trunk on a 640x640 input with SCRFD's nine outputs (strides 8,
  16, 32, two anchors; one face fires, so each frame costs one alignment and one embedding),
  about 15 GFLOPs against SCRFD-10G's 10; the recognizer is a ResNet-50 on 112x112 -> 512
  (about 4 GFLOPs against IResNet-50's 6.3). CCIP's feature model is a timm CAFormer-S18
  (MetaFormer with convolution and attention mixers, CCIP's family) on 384x384 -> 768; its
  metrics model is the (1 - cos) / 2 one of tests/quality/tiny_ccip.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from blocks.scoring import ScoringModels
from tasks.scoring.loading.aesthetic_head import AestheticMLP
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

# InsightFace's ArcFace landmark template for a 112x112 crop (utils/face_align.arcface_dst).
_ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], np.float32,
)  # fmt: skip
DET_SIZE = 640


class _ScrfdShaped(torch.nn.Module):
    """SCRFD's output signature (score/bbox/kps for strides 8, 16, 32, two anchors) on a
    ResNet-18 trunk. One anchor at stride 32 fires with a 96x96 box and ArcFace-template
    keypoints; the heads' convolutions run (their cost counts) but are scaled to nothing."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision.models

        trunk = torchvision.models.resnet18(weights=None)
        self.stem = torch.nn.Sequential(
            trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1
        )
        self.levels = torch.nn.ModuleList([trunk.layer2, trunk.layer3, trunk.layer4])
        self.heads = torch.nn.ModuleList(
            torch.nn.Conv2d(c, 2 * (1 + 4 + 10), 3, padding=1) for c in (128, 256, 512)
        )
        cells32 = (DET_SIZE // 32) ** 2 * 2
        score = torch.full((cells32, 1), -20.0)
        score[(DET_SIZE // 32) * 8 * 2 + 8 * 2] = 20.0  # the anchor at cell (8, 8)
        self.register_buffer("score32", score)
        kps = _ARCFACE_TEMPLATE * (96 / 112.0) - 32
        self.register_buffer("kps", torch.from_numpy((kps / 32).reshape(1, 10)))
        self.register_buffer("box", torch.tensor([[1.0, 1.0, 2.0, 2.0]]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        scores, boxes, kpss = [], [], []
        for i, (level, head) in enumerate(zip(self.levels, self.heads, strict=True)):
            x = level(x)
            out = head(x).permute(0, 2, 3, 1).reshape(-1, 15) * 1e-6
            base = self.score32 if i == 2 else torch.full_like(out[:, :1], -20.0)
            scores.append(torch.sigmoid(out[:, :1] + base))
            boxes.append(out[:, 1:5] + self.box)
            kpss.append(out[:, 5:] + self.kps)
        return (*scores, *boxes, *kpss)


def _export(module: torch.nn.Module, path: Path, shape: tuple[int, ...], inputs: str,
            outputs: list[str], dynamic_batch: bool = False) -> None:  # fmt: skip
    module.eval()
    axes = {inputs: {0: "N"}, outputs[0]: {0: "N"}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(
            module, torch.zeros(shape), str(path), input_names=[inputs], output_names=outputs,
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip


def write_face_pack(folder: Path) -> Path:
    import torchvision.models

    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    _export(_ScrfdShaped(), folder / "det_bench.onnx", (1, 3, DET_SIZE, DET_SIZE), "input.1",
            names)  # fmt: skip
    rec = torchvision.models.resnet50(weights=None, num_classes=512)
    rec.maxpool = torch.nn.Identity()  # 112 in: stage resolutions 56..7 as IResNet's
    _export(rec, folder / "w600k_bench.onnx", (1, 3, 112, 112), "data", ["fc1"])
    return folder


def write_ccip_folder(folder: Path) -> Path:
    import timm

    from tests.quality.tiny_ccip import THRESHOLD, build_metrics_model

    folder.mkdir(parents=True, exist_ok=True)
    feat = timm.create_model("caformer_s18", pretrained=False, num_classes=768)
    _export(feat, folder / "model_feat.onnx", (1, 3, 384, 384), "input", ["output"],
            dynamic_batch=True)  # fmt: skip
    build_metrics_model(folder / "model_metrics.onnx")
    (folder / "metrics.json").write_text(json.dumps({"threshold": THRESHOLD}))
    return folder


def write_real_architectures(folder: Path, *, seed: int = 0) -> ScoringModels:
    """Write every metric's real architecture, random weights, under ``folder``; return the
    block that loads them (InsightFace as the identity model; CCIP's folder set too)."""
    ensure_torchvision_importable()
    import open_clip
    import timm
    import torchvision.models

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    # OpenAI's release name: the loader reads QuickGELU from it, as for the real file.
    clip_path = folder / "ViT-L-14.pt"
    if not clip_path.exists():
        clip = open_clip.create_model("ViT-L-14", quick_gelu=True)
        torch.save(clip.state_dict(), clip_path)
        del clip
    head_path = folder / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(AestheticMLP(768).state_dict(), head_path)
    dino_path = folder / "dino_vitbase16_pretrain.pth"
    if not dino_path.exists():
        dino = timm.create_model("vit_base_patch16_224.dino", pretrained=False, num_classes=0)
        torch.save(dino.state_dict(), dino_path)
    alex_path = folder / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex_path)
    face = write_face_pack(folder / "buffalo_bench")
    ccip = write_ccip_folder(folder / "ccip-bench")
    return ScoringModels(
        clip_model="ViT-L-14",
        clip_pretrained=str(clip_path),
        aesthetic_head=str(head_path),
        subject_backbone="dino",
        dino_weights=str(dino_path),
        lpips_net="alex",
        lpips_backbone=str(alex_path),
        face_model=str(face),
        face_det_size=DET_SIZE,
        ccip_model=str(ccip),
        allow_downloads=False,
    )
