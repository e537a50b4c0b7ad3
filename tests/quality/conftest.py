"""Fixtures for the quality tests: a tiny face-model pack and images made of real faces.

The faces are crops of InsightFace's sample photo ``t1`` (six people), pasted as 96x96 tiles
on a plain 256x256 canvas at positions on the detector's 32-pixel grid (see
tiny_face_models.py for why).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from .tiny_face_models import CANVAS, CELL, TILE, build_face_pack

# (x, y, size) of each face in t1.jpg (1280x886).
T1_FACES: dict[str, tuple[int, int, int]] = {
    "rachel": (60, 250, 150),
    "monica": (280, 120, 140),
    "ross": (460, 230, 150),
    "chandler": (740, 300, 150),
    "joey": (900, 20, 160),
    "phoebe": (1110, 260, 150),
}
BACKGROUND = 128


@pytest.fixture(scope="session")
def face_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_face_pack(tmp_path_factory.mktemp("face_models") / "tiny_pack")


@pytest.fixture(scope="session")
def scoring_models(face_pack: Path):
    from blocks.scoring import ScoringModels

    return ScoringModels(face_model=str(face_pack), face_det_size=CANVAS, device="cpu")


@pytest.fixture(scope="session")
def embedder(scoring_models):
    from tasks.scoring.face_embedder import load_face_embedder

    return load_face_embedder(scoring_models)


@pytest.fixture(scope="session")
def t1() -> np.ndarray:
    import insightface

    return np.ascontiguousarray(insightface.data.get_image("t1", to_rgb=True))


def face_tile(
    t1: np.ndarray, who: str, *, shift: tuple[int, int] = (0, 0), gain: float = 1.0
) -> np.ndarray:
    """A 96x96 RGB tile of one person's face; ``shift``/``gain`` make another 'view'."""
    x, y, size = T1_FACES[who]
    x, y = x + shift[0], y + shift[1]
    crop = t1[y : y + size, x : x + size].astype(np.float32) * gain
    return cv2.resize(np.clip(crop, 0, 255).astype(np.uint8), (TILE, TILE))


def canvas(*tiles: tuple[np.ndarray, tuple[int, int]]) -> np.ndarray:
    """A plain image with each tile at a (column, row) cell of the detector grid."""
    image = np.full((CANVAS, CANVAS, 3), BACKGROUND, np.uint8)
    for tile, (col, row) in tiles:
        x, y = col * CELL, row * CELL
        image[y : y + TILE, x : x + TILE] = tile
    return image
