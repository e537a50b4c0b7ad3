"""deepghs' CCIP (anime character similarity) as a ``FaceEmbedder``.

CCIP reads a whole character picture (no face detection): its feature model takes
``input`` float32 N x 3 x 384 x 384 (RGB resized to 384 x 384, bilinear, CLIP's mean and std)
and returns ``output`` N x 768; its metrics model takes those N features and returns the N x N
"difference" matrix; ``metrics.json`` holds the published difference ``threshold``. So the
embedder answers one "face" per image, the whole picture, with the unit-length feature, and
face_similarity's cosine applies unchanged. When the metrics model's difference is
(1 - cosine) / 2 (checked on load, not assumed), the published threshold becomes the cosine
``1 - 2 * threshold`` and the face gate uses it until the character is calibrated.

Loading never downloads: ``anime models fetch ccip`` places the three files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from blocks.model_files import CCIP_FILES, CCIP_REPO
from tasks.scoring.face_embedder import DetectedFace
from tasks.scoring.loading.errors import FaceModelUnavailable
from tasks.scoring.loading.places import models_dir

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

logger = logging.getLogger(__name__)

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
DEFAULT_SIZE = 384


def ccip_folder(models: ScoringModels) -> Path:
    """``ccip_model`` itself when it is a path, else ``<models dir>/ccip/<name>``."""
    value = models.ccip_model
    direct = Path(value).expanduser()
    if direct.is_absolute() or "/" in value or value.startswith(("~", ".")):
        return direct
    return models_dir() / "ccip" / value


def _unavailable(folder: Path, problem: str) -> FaceModelUnavailable:
    return FaceModelUnavailable(
        f"CCIP {folder.name!r}",
        f"{folder}/ (to hold {', '.join(CCIP_FILES)})",
        f"Run `anime models fetch ccip` where there is internet, or copy those files from "
        f"https://huggingface.co/{CCIP_REPO}/tree/main/{folder.name} into that folder, or set "
        "ScoringModels.ccip_model to a folder holding them.",
        problem=problem,
    )


class CcipEmbedder:
    """CCIP feature model (and its metrics model, to read the published threshold)."""

    def __init__(self, folder: Path, *, providers: Sequence[str] = ("CPUExecutionProvider",)):
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
        self.folder = Path(folder)
        self.name = f"ccip:{self.folder.name}"
        if not self.folder.is_dir():
            raise _unavailable(self.folder, "folder not found")
        missing = [f for f in CCIP_FILES if not (self.folder / f).is_file()]
        if missing:
            raise _unavailable(self.folder, f"missing {', '.join(missing)}")
        try:
            self.features = onnxruntime.InferenceSession(
                str(self.folder / "model_feat.onnx"), providers=list(providers)
            )
            self.metrics = onnxruntime.InferenceSession(
                str(self.folder / "model_metrics.onnx"), providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise _unavailable(self.folder, f"cannot load: {exc}") from exc
        self.size = self._check_signature()
        self.difference_threshold = self._published_threshold()
        self.threshold = self._cosine_threshold()

    def _check_signature(self) -> int:
        [inp], [out] = self.features.get_inputs(), self.features.get_outputs()
        shape = inp.shape
        if inp.name != "input" or out.name != "output" or len(shape) != 4 or shape[1] != 3:
            raise _unavailable(
                self.folder,
                f"model_feat.onnx takes {inp.name} {shape} and gives {out.name} {out.shape}; "
                "CCIP's takes input [N, 3, 384, 384] and gives output [N, 768]",
            )
        return shape[2] if isinstance(shape[2], int) else DEFAULT_SIZE

    def _published_threshold(self) -> float | None:
        try:
            data = json.loads((self.folder / "metrics.json").read_text(encoding="utf-8"))
            return float(data["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"metrics.json has no numeric threshold ({exc})"
            raise _unavailable(self.folder, problem) from exc

    def _cosine_threshold(self) -> float | None:
        """The published threshold as a cosine, if the metrics model is (1 - cos) / 2."""
        rng = np.random.default_rng(0)
        dim = self.features.get_outputs()[0].shape[-1]
        feats = rng.normal(size=(3, dim if isinstance(dim, int) else 768)).astype(np.float32)
        try:
            (difference,) = self.metrics.run(["output"], {"input": feats})
        except Exception as exc:
            raise _unavailable(self.folder, f"model_metrics.onnx does not run ({exc})") from exc
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        if np.allclose(difference, (1.0 - unit @ unit.T) / 2.0, atol=1e-4):
            return 1.0 - 2.0 * self.difference_threshold
        logger.warning(
            "%s: its metrics model is not (1 - cosine) / 2; its published threshold is not used",
            self.name,
        )
        return None

    def _preprocess(self, image: np.ndarray) -> np.ndarray:
        resized = Image.fromarray(image).resize((self.size, self.size), Image.BILINEAR)
        data = np.asarray(resized, np.float32) / 255.0
        return ((data - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length CCIP features of RGB uint8 images, N x 768."""
        batch = np.stack([self._preprocess(im) for im in images]).astype(np.float32)
        (features,) = self.features.run(["output"], {"input": batch})
        features = np.asarray(features, np.float32)
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        """The whole picture as the one "face": CCIP judges the character, not a face crop."""
        h, w = image.shape[:2]
        embedding = self.embed([image])[0]
        if not np.all(np.isfinite(embedding)):
            return []
        return [
            DetectedFace(bbox=(0.0, 0.0, float(w), float(h)), det_score=1.0, embedding=embedding)
        ]
