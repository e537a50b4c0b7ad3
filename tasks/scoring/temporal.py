"""Metrics over a whole clip: temporal LPIPS, subject consistency, motion smoothness.

Each takes the clip at once (a T x H x W x 3 uint8 array, a list of images, a video file, an
animated image or a folder of frames) and runs its model over batches of frames, never pair by
pair in Python. Definitions follow VBench where VBench defines the metric; docs/metrics.md says
where we differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from blocks.scoring import ScoringModels
from tasks.scoring.images import FramesLike, load_frames
from tasks.scoring.loading.clip import load_clip
from tasks.scoring.loading.dino import load_dino
from tasks.scoring.loading.lpips import LpipsNet, load_lpips
from tasks.scoring.results import MetricResult


def _too_short(metric: str, frames: int, needed: int, model: str = "") -> MetricResult:
    return MetricResult(
        metric=metric,
        value=None,
        model=model,
        reason=f"clip has {frames} frame(s); {metric} needs at least {needed}",
        details={"frames": frames},
    )


# --------------------------------------------------------------------------- temporal LPIPS


def _lpips_features(net: LpipsNet, frames: np.ndarray) -> list[torch.Tensor]:
    """LPIPS's per-layer unit-normalised features of uint8 frames (scaled to [-1, 1])."""
    import lpips

    module = net.module
    x = torch.from_numpy(frames).to(net.runtime.device).permute(0, 3, 1, 2).float()
    x = x / 127.5 - 1.0
    if module.version == "0.1":
        x = module.scaling_layer(x)
    with net.runtime.autocast():
        outs = module.net.forward(x)
    return [lpips.normalize_tensor(o.float()) for o in outs]


def _lpips_between(net: LpipsNet, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """lpips.LPIPS.forward's distance from already computed features, one value per row."""
    import lpips

    module = net.module
    total = torch.zeros(a[0].shape[0], device=a[0].device)
    for layer in range(module.L):
        diff = (a[layer] - b[layer]) ** 2
        if module.lpips:
            # fp32 on purpose: squared differences of near-identical frames underflow in fp16,
            # and these 1x1 convolutions cost nothing next to the backbone.
            weighted = module.lins[layer](diff)
            total += lpips.spatial_average(weighted, keepdim=True).flatten()
        else:
            total += lpips.spatial_average(diff.sum(dim=1, keepdim=True), keepdim=True).flatten()
    return total


@torch.inference_mode()
def lpips_consecutive(net: LpipsNet, frames: np.ndarray) -> np.ndarray:
    """LPIPS distance of each consecutive pair (frames[i], frames[i+1]), T-1 values.

    Frames go through the backbone once each, in batches; the last frame's features of one batch
    are kept for the first pair of the next, so this equals ``lpips.LPIPS(frames[:-1],
    frames[1:])`` at about half the backbone work."""
    distances: list[np.ndarray] = []
    carried: list[torch.Tensor] | None = None
    step = max(1, net.runtime.batch_size)
    for start in range(0, len(frames), step):
        feats = _lpips_features(net, frames[start : start + step])
        if carried is not None:
            feats = [torch.cat([c, f]) for c, f in zip(carried, feats, strict=True)]
        if feats[0].shape[0] > 1:
            before = [f[:-1] for f in feats]
            after = [f[1:] for f in feats]
            distances.append(_lpips_between(net, before, after).cpu().numpy())
        carried = [f[-1:] for f in feats]
    return np.concatenate(distances) if distances else np.zeros(0, dtype=np.float32)


def temporal_lpips(
    frames: FramesLike, models: ScoringModels | None = None, *, loop: bool = False
) -> MetricResult:
    """Mean LPIPS between consecutive frames (lower is steadier); the max and the worst pair
    (frame indices) are in details. ``loop``: also count the last frame -> first frame seam."""
    models = models or ScoringModels()
    clip = load_frames(frames)
    if len(clip) < 2:
        return _too_short("temporal_lpips", len(clip), 2)
    net = load_lpips(models)
    if loop:
        clip = np.concatenate([clip, clip[:1]])
    distances = lpips_consecutive(net, clip).astype(float)
    worst = int(distances.argmax())
    n = len(clip) - 1 if loop else len(clip)
    return MetricResult(
        metric="temporal_lpips",
        value=float(distances.mean()),
        model=net.name,
        details={
            "frames": n,
            "pairs": len(distances),
            "max": float(distances[worst]),
            "worst_pair": [worst, (worst + 1) % n],
            "loop": loop,
            "per_pair": [round(float(d), 5) for d in distances],
        },
    )


# --------------------------------------------------------------------------- subject consistency


class ImageEmbedder(Protocol):
    """Turns images into L2-normalised feature rows, in batches (CLIP and DINO both do)."""

    name: str

    def embed(self, images: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """(N, D) float32 CPU tensor, each row of unit length."""
        ...


def load_subject_embedder(models: ScoringModels) -> ImageEmbedder:
    """The feature backbone subject consistency uses: CLIP by default, DINO when chosen."""
    if models.subject_backbone == "dino":
        return load_dino(models)
    return load_clip(models)


def subject_consistency_from_features(features: torch.Tensor) -> tuple[float, np.ndarray]:
    """VBench's subject consistency from unit-length per-frame features (T x D).

    For each frame i > 0: (max(0, cos(f[i-1], f[i])) + max(0, cos(f[0], f[i]))) / 2, averaged
    over frames 1 .. T-1. Returns the mean and the per-frame values (T-1)."""
    # Rounding can put the cosine of identical unit rows a few ulps above 1: clamp to [0, 1].
    previous = (features[1:] * features[:-1]).sum(-1).clamp(0.0, 1.0)
    first = (features[1:] * features[:1]).sum(-1).clamp(0.0, 1.0)
    per_frame = ((previous + first) / 2).double().numpy()
    return float(per_frame.mean()), per_frame


def subject_consistency(frames: FramesLike, models: ScoringModels | None = None) -> MetricResult:
    """How well each frame's features agree with the previous and the first frame (0-1)."""
    models = models or ScoringModels()
    clip = load_frames(frames)
    if len(clip) < 2:
        return _too_short("subject_consistency", len(clip), 2)
    embedder = load_subject_embedder(models)
    value, per_frame = subject_consistency_from_features(embedder.embed(clip))
    worst = int(per_frame.argmin()) + 1
    return MetricResult(
        metric="subject_consistency",
        value=value,
        model=embedder.name,
        details={
            "frames": len(clip),
            "backbone": models.subject_backbone,
            "min": float(per_frame.min()),
            "worst_frame": worst,
            "per_frame": [round(float(v), 5) for v in per_frame],
        },
    )


# --------------------------------------------------------------------------- motion smoothness


class FrameInterpolator(Protocol):
    """Predicts the frame halfway between each pair: ``before`` and ``after`` are N x H x W x 3
    uint8 arrays, the answer is too. VBench uses AMT-S here; any model fitting this works."""

    name: str

    def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray: ...


class LinearBlendInterpolator:
    """The midpoint of the two neighbours, pixel by pixel, all pairs at once.

    Exact for fades and static shots; a moving edge comes out as two half-strength ghosts
    instead of one edge halfway, so it scores moving clips lower than a motion-compensated
    interpolator (AMT) would."""

    name = "linear blend"

    def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        total = before.astype(np.uint16) + after.astype(np.uint16) + 1
        return (total // 2).astype(np.uint8)


class FlowBlendInterpolator:
    """Optical-flow warp of both neighbours halfway, then blended: the cheap cousin of AMT.

    Farneback flow both ways on grey frames (at ``flow_scale`` of the size, for speed); each
    neighbour is sampled half a flow step back (``I0(x - F01(x)/2)``, ``I1(x - F10(x)/2)``),
    which assumes the flow changes slowly across the image. Needs opencv; loops over pairs in
    Python around OpenCV calls (there is no model to batch)."""

    name = "farneback flow blend"

    def __init__(self, flow_scale: float = 0.5) -> None:
        self.flow_scale = flow_scale

    def _flow(self, cv2: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape
        if self.flow_scale != 1.0:
            size = (max(8, int(w * self.flow_scale)), max(8, int(h * self.flow_scale)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        if self.flow_scale != 1.0:
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) / self.flow_scale
        return flow

    def __call__(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        import cv2

        out = np.empty_like(before)
        h, w = before.shape[1:3]
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            grey_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
            grey_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            f_ab = self._flow(cv2, grey_a, grey_b)
            f_ba = self._flow(cv2, grey_b, grey_a)
            half_ab = (grid_x - 0.5 * f_ab[..., 0], grid_y - 0.5 * f_ab[..., 1])
            half_ba = (grid_x - 0.5 * f_ba[..., 0], grid_y - 0.5 * f_ba[..., 1])
            from_a = cv2.remap(a, *half_ab, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            from_b = cv2.remap(b, *half_ba, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[i] = ((from_a.astype(np.uint16) + from_b + 1) // 2).astype(np.uint8)
        return out


def motion_smoothness(
    frames: FramesLike,
    interpolator: FrameInterpolator | None = None,
    models: ScoringModels | None = None,
) -> MetricResult:
    """VBench's motion smoothness: drop the odd frames, rebuild each from its even neighbours
    with ``interpolator``, score = 1 - mean|original - rebuilt| / 255 over the rebuilt frames
    (1 is perfectly predictable motion). Default interpolator: ``FlowBlendInterpolator``, the
    closest of the two shipped ones to VBench's AMT (see docs/metrics.md)."""
    models = models or ScoringModels()
    interpolator = interpolator or FlowBlendInterpolator()
    clip = load_frames(frames)
    if len(clip) < 3:
        return _too_short("motion_smoothness", len(clip), 3, interpolator.name)
    even = clip[0::2]
    targets = clip[1 : 2 * (len(even) - 1) : 2]  # odd frames with an even frame on each side
    errors = np.empty(len(targets), dtype=np.float64)
    step = max(1, models.batch_size)
    for start in range(0, len(targets), step):
        stop = start + len(targets[start : start + step])
        rebuilt = interpolator(even[start:stop], even[start + 1 : stop + 1])
        if rebuilt.shape != targets[start:stop].shape or rebuilt.dtype != np.uint8:
            raise ValueError(
                f"interpolator {interpolator.name!r} returned {rebuilt.shape} {rebuilt.dtype}, "
                f"expected {targets[start:stop].shape} uint8"
            )
        diff = np.abs(targets[start:stop].astype(np.int16) - rebuilt.astype(np.int16))
        errors[start:stop] = diff.reshape(len(diff), -1).mean(axis=1)
    worst = int(errors.argmax())
    return MetricResult(
        metric="motion_smoothness",
        value=float((255.0 - errors.mean()) / 255.0),
        model=interpolator.name,
        details={
            "frames": len(clip),
            "rebuilt_frames": len(targets),
            "mean_abs_error": float(errors.mean()),
            "worst_frame": 2 * worst + 1,
            "worst_abs_error": float(errors[worst]),
        },
    )
