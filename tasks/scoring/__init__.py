"""Quality scoring: metrics over renders, and the decisions taken from them. No Prefect here.

Modules (import them directly for anything not listed below):

- ``loading/``: the models (``clip``, ``aesthetic_head``, ``lpips``, ``dino``), where they run
  and their per-process cache (``device``), weight files (``downloads``; where they live,
  without importing torch: ``places``), ``errors`` and the ``torchvision_compat`` shim.
- ``images``: images and clips as the metrics take them (``load_image``, ``load_frames``).
- metrics: ``faces`` (+ ``face_embedder``), ``aesthetic``, ``style``, ``temporal``,
  ``calibration``; each returns ``results.MetricResult``.
- ``judge``: score a keyframe or clip for its phase and decide the job; ``gates``: job and
  phase-gate decisions.

The names below load on first use, so ``import tasks.scoring`` stays cheap (no torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.scoring.gates import (
        JobDecision,
        MetricLine,
        PhaseGateDecision,
        decide_job,
        decide_phase_gate,
    )
    from tasks.scoring.images import load_frames, load_image
    from tasks.scoring.judge import decide, required_metrics, score_clip, score_keyframe
    from tasks.scoring.loading.errors import FaceModelUnavailable, FrameInputError, ModelUnavailable
    from tasks.scoring.results import MetricResult

_PUBLIC = {
    "MetricResult": "results",
    "ModelUnavailable": "loading.errors",
    "FaceModelUnavailable": "loading.errors",
    "FrameInputError": "loading.errors",
    "load_image": "images",
    "load_frames": "images",
    "score_keyframe": "judge",
    "score_clip": "judge",
    "required_metrics": "judge",
    "decide": "judge",
    "decide_job": "gates",
    "decide_phase_gate": "gates",
    "JobDecision": "gates",
    "MetricLine": "gates",
    "PhaseGateDecision": "gates",
}

__all__ = [
    "FaceModelUnavailable",
    "FrameInputError",
    "JobDecision",
    "MetricLine",
    "MetricResult",
    "ModelUnavailable",
    "PhaseGateDecision",
    "decide",
    "decide_job",
    "decide_phase_gate",
    "load_frames",
    "load_image",
    "required_metrics",
    "score_clip",
    "score_keyframe",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
