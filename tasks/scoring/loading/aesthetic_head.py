"""LAION's improved-aesthetic-predictor head (the MLP read on CLIP image embeddings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from blocks.model_files import AESTHETIC_HEAD_URL
from tasks.scoring.loading.device import Runtime, cached
from tasks.scoring.loading.downloads import fetch_or_fail, load_state_dict
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.places import aesthetic_head_path

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels


class AestheticMLP(torch.nn.Module):
    """LAION improved-aesthetic-predictor head, layer for layer as published (no activations:
    the released weights were trained that way), so its state dict (layers.0 ... layers.7)
    loads unchanged."""

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.input_size = input_size
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_size, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_aesthetic_head(models: ScoringModels) -> AestheticMLP:
    """The LAION aesthetic head (fetched to the default location when online and unset)."""
    runtime = Runtime.of(models)
    path = aesthetic_head_path(models)
    model = "LAION aesthetic head"

    def build() -> AestheticMLP:
        how = (
            f"Download {AESTHETIC_HEAD_URL} to {path}, or set ScoringModels.aesthetic_head to a "
            "local copy of the .pth file."
        )
        if not path.is_file():
            if models.aesthetic_head:  # an explicit path is never replaced by a download
                raise ModelUnavailable(model, str(path), how)
            fetch_or_fail(
                models,
                AESTHETIC_HEAD_URL,
                path,
                model=model,
                field="aesthetic_head",
                kit="aesthetic",
            )
        state = load_state_dict(path, model=model, how=how)
        first = state.get("layers.0.weight")
        if first is None or first.ndim != 2:
            raise ModelUnavailable(
                model,
                str(path),
                how,
                problem="not an improved-aesthetic-predictor state dict (no layers.0.weight)",
            )
        head = AestheticMLP(int(first.shape[1]))
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            problem = f"weights do not fit the published MLP ({str(exc).splitlines()[0]})"
            raise ModelUnavailable(model, str(path), how, problem=problem) from exc
        return head.eval().requires_grad_(False).to(runtime.device)

    return cached(("aesthetic", str(path), runtime.device), build)
