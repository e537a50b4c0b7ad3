"""Style adherence: how close an image's CLIP embedding is to the story bible's style references.

Image to image, never image to text: a style prompt says what the studio asked for, the
reference images show what it meant. For each image we take the cosine similarity of its
L2-normalised CLIP embedding with every reference and report

- ``value`` = the mean over references (the documented gate value: an image should sit in the
  style of the whole reference set, not next to a single outlier), and
- ``details["max"]`` = the best single reference, ``details["best_reference"]`` its index,
  ``details["per_reference"]`` all of them.

With no references the metric cannot judge, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blocks.scoring import ScoringModels
from tasks.scoring.images import ImageLike, load_image
from tasks.scoring.loading.clip import load_clip
from tasks.scoring.results import MetricResult

METRIC = "style_adherence"
NO_REFERENCES = "story bible has no style reference images"


def style_adherence_batch(
    images: Sequence[ImageLike],
    style_references: Sequence[ImageLike],
    models: ScoringModels | None = None,
) -> list[MetricResult]:
    """Style adherence of each image against the same references, embedded once, in batches."""
    if not style_references:
        return [MetricResult(metric=METRIC, value=None, reason=NO_REFERENCES) for _ in images]
    if len(images) == 0:
        return []
    models = models or ScoringModels()
    clip = load_clip(models)
    refs = [load_image(r, where=f"style reference {i}") for i, r in enumerate(style_references)]
    pictures = [load_image(im, where=f"image {i}") for i, im in enumerate(images)]
    embeddings = clip.embed(pictures + refs)
    image_rows, ref_rows = embeddings[: len(pictures)], embeddings[len(pictures) :]
    cosines = (image_rows @ ref_rows.T).clamp(-1.0, 1.0)  # rows are unit length already
    results = []
    for row in cosines:
        best = int(torch.argmax(row))
        results.append(
            MetricResult(
                metric=METRIC,
                value=float(row.mean()),
                model=clip.name,
                details={
                    "mean": float(row.mean()),
                    "max": float(row[best]),
                    "best_reference": best,
                    "references": len(refs),
                    "per_reference": [round(float(c), 4) for c in row],
                },
            )
        )
    return results


def style_adherence(
    image: ImageLike,
    style_references: Sequence[ImageLike],
    models: ScoringModels | None = None,
) -> MetricResult:
    """Mean CLIP image-image cosine of ``image`` with the style references (max in details)."""
    return style_adherence_batch([image], style_references, models)[0]
