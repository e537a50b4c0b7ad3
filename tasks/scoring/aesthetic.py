"""Aesthetic score: LAION's improved aesthetic predictor on CLIP ViT-L/14 image embeddings.

The head (a small MLP) reads the L2-normalised CLIP image embedding and predicts the mean
rating people gave on a 1-10 scale. Its raw output can stray slightly outside that range on
unusual images; we clamp to [1, 10] so gates compare like with like and record the raw value in
``details["raw"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from blocks.scoring import ScoringModels
from tasks.scoring.images import FramesLike, ImageLike, load_frames, load_image
from tasks.scoring.loading.aesthetic_head import load_aesthetic_head
from tasks.scoring.loading.clip import load_clip
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.results import MetricResult

METRIC = "aesthetic"
SCALE = (1.0, 10.0)


def _predict(
    images: Sequence[ImageLike] | np.ndarray, models: ScoringModels
) -> tuple[list[float], str]:
    clip = load_clip(models)
    head = load_aesthetic_head(models)
    if head.input_size != clip.embed_dim:
        raise ModelUnavailable(
            "LAION aesthetic head",
            f"a head for {clip.embed_dim}-d embeddings ({clip.name})",
            "Set ScoringModels.aesthetic_head to weights trained on this CLIP model's "
            "embeddings, or ScoringModels.clip_model / clip_pretrained to the model the head "
            "was trained on (ViT-L-14 / openai for the public head).",
            problem=f"the head reads {head.input_size}-d embeddings",
        )
    pictures = images if isinstance(images, np.ndarray) else [load_image(i) for i in images]
    embeddings = clip.embed(pictures)
    with torch.inference_mode():
        raw = head(embeddings.to(clip.runtime.device)).float().squeeze(-1).cpu()
    return raw.tolist(), f"{clip.name} + LAION aesthetic head"


def _result(raw: float, model: str, **details: object) -> MetricResult:
    value = min(max(raw, SCALE[0]), SCALE[1])
    return MetricResult(
        metric=METRIC,
        value=value,
        model=model,
        details={"raw": raw, "clamped": value != raw, "scale": list(SCALE), **details},
    )


def aesthetic_batch(
    images: Sequence[ImageLike], models: ScoringModels | None = None
) -> list[MetricResult]:
    """One aesthetic result per image, CLIP embeddings computed in batches."""
    models = models or ScoringModels()
    if len(images) == 0:
        return []
    raws, model = _predict(images, models)
    return [_result(raw, model) for raw in raws]


def aesthetic(image: ImageLike, models: ScoringModels | None = None) -> MetricResult:
    """Aesthetic score (1-10, clamped) of one image."""
    return aesthetic_batch([image], models)[0]


def aesthetic_of_frames(frames: FramesLike, models: ScoringModels | None = None) -> MetricResult:
    """Mean aesthetic score over a clip's frames; the weakest frame is named in details."""
    models = models or ScoringModels()
    clip = load_frames(frames)
    raws, model = _predict(clip, models)
    values = np.clip(np.asarray(raws), *SCALE)
    worst = int(values.argmin())
    return MetricResult(
        metric=METRIC,
        value=float(values.mean()),
        model=model,
        details={
            "frames": len(values),
            "min": float(values.min()),
            "max": float(values.max()),
            "worst_frame": worst,
            "per_frame": [round(float(v), 4) for v in values],
            "scale": list(SCALE),
        },
    )
