"""Face detection and embedding behind one small interface; InsightFace is the default.

InsightFace's packs (buffalo_l: SCRFD detector + ArcFace recognizer) are trained on
photographs and are weak on cartoon faces, so the metrics in ``tasks.scoring.faces`` only talk
to a ``FaceEmbedder``; deepghs' CCIP (``tasks.scoring.ccip``, anime characters) is the other
one, chosen by ``ScoringModels.face_embedder`` or a project's ``settings.face_embedder``.

Loading never downloads. ``insightface.app.FaceAnalysis`` would: given a pack name whose folder
is missing it fetches the zip from GitHub (a hang or a retry loop offline), and given a folder
without a detector it stops with a bare ``AssertionError``. It also opens a session for every
model of the pack (five for buffalo_l) although scoring needs two. So the folder is resolved
here, and the detector and recognizer are loaded through ``insightface.model_zoo.get_model``,
the same call FaceAnalysis makes for each file; anything missing is one ``FaceModelUnavailable``
naming the folder and the files expected there.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from db.image_files import load_image_file
from tasks.scoring.loading.errors import FaceModelUnavailable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike[str] | Image.Image | np.ndarray
Device = Literal["auto", "cpu", "cuda"]

DEFAULT_FACE_ROOT = "~/.insightface"
# insightface.utils.storage.MODEL_ZOO_RELEASE_DOWNLOAD_URL, written out: importing insightface
# for it, only to word the error of a missing pack, was 1.3 s of CPU in every run without one
# (tests/quality/test_face_models.py checks the two agree).
MODEL_ZOO_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/"


def pack_url(pack: str) -> str:
    """Where InsightFace publishes the model pack `pack` (e.g. buffalo_l) as a zip."""
    return f"{MODEL_ZOO_URL}{pack}.zip"


# The two files scoring needs from InsightFace's published packs (for error messages only;
# any folder with one detection and one recognition model loads).
KNOWN_PACK_FILES: dict[str, tuple[str, str]] = {
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
    "buffalo_m": ("det_2.5g.onnx", "w600k_r50.onnx"),
    "buffalo_s": ("det_500m.onnx", "w600k_mbf.onnx"),
    "buffalo_sc": ("det_500m.onnx", "w600k_mbf.onnx"),
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx"),
}


def _model_label(face_model: str, folder: Path) -> str:
    if face_model in KNOWN_PACK_FILES or folder.name == face_model:
        return f"InsightFace pack {face_model!r}"
    return f"face model folder {str(folder)!r}"


def _unavailable(face_model: str, folder: Path, problem: str) -> FaceModelUnavailable:
    """One error naming the model, the folder and files expected, and how to provide them."""
    if face_model in KNOWN_PACK_FILES:
        det, rec = KNOWN_PACK_FILES[face_model]
        files = f"{det} (detection) and {rec} (recognition)"
    else:
        files = "an SCRFD detection .onnx (with keypoints) and an ArcFace recognition .onnx"
    how = "Nothing is downloaded at scoring time: "
    if face_model in KNOWN_PACK_FILES:
        how += (
            f"download {pack_url(face_model)} where there is internet "
            f"and unzip it into {folder}/, or "
        )
    how += "set ScoringModels.face_model to a folder holding those two models."
    return FaceModelUnavailable(
        _model_label(face_model, folder), f"{folder}/ (to hold {files})", how, problem=problem
    )


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image. ``embedding`` has unit length."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    det_score: float
    embedding: np.ndarray = field(repr=False)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.bbox
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@runtime_checkable
class FaceEmbedder(Protocol):
    """Detects faces in an RGB image and embeds each one."""

    name: str  # recorded as MetricResult.model

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        """``image`` is RGB uint8, HxWx3. Faces come back with unit-length embeddings."""
        ...


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """An image file, PIL image or array as an RGB uint8 HxWx3 array.

    Arrays are taken as RGB (as PIL gives them), not as OpenCV's BGR.
    """
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        return np.asarray(load_image_file(path, "RGB"))  # references: bounded like at import
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
                array = np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
            else:
                raise ValueError(
                    f"image array must be uint8 (0-255) or float (0-1), got dtype {array.dtype}"
                )
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
        return np.ascontiguousarray(array[:, :, :3])
    raise TypeError(f"not an image: {type(image).__name__} (expected a path, PIL image or array)")


# --- onnxruntime providers -------------------------------------------------------------


def _cuda_device_count() -> int:
    """GPUs the NVIDIA driver reports; 0 without a driver.

    onnxruntime-gpu lists CUDAExecutionProvider on machines without a GPU too, then logs errors
    and falls back at session creation; asking the driver first avoids that.
    """
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


_warned_cpu_fallback = False


def onnx_providers(device: Device = "auto") -> list[str]:
    """The onnxruntime providers to pass explicitly: CUDA first when allowed and usable."""
    global _warned_cpu_fallback
    import onnxruntime

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"ScoringModels.device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    compiled = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if compiled and _cuda_device_count() > 0:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda" and not _warned_cpu_fallback:
        _warned_cpu_fallback = True
        why = (
            "no GPU is visible to the NVIDIA driver"
            if compiled
            else "the active onnxruntime has no CUDAExecutionProvider "
            "(install onnxruntime-gpu last; it shares a package folder with onnxruntime)"
        )
        logger.warning("ScoringModels.device is 'cuda' but %s: face models run on CPU", why)
    return ["CPUExecutionProvider"]


# --- model folder -----------------------------------------------------------------------


def resolve_face_model_dir(face_model: str, face_root: str | None = None) -> Path:
    """The folder holding the face models: ``face_model`` itself when it is a path, else the
    pack ``<face_root>/models/<face_model>``. Raises FaceModelUnavailable when it is absent."""
    direct = Path(face_model).expanduser()
    is_path = direct.is_absolute() or "/" in face_model or os.sep in face_model
    if is_path or face_model.startswith(("~", ".")) or direct.is_dir():
        folder = direct
    else:
        folder = Path(face_root or DEFAULT_FACE_ROOT).expanduser() / "models" / face_model
    if not folder.is_dir():
        raise _unavailable(face_model, folder, "folder not found")
    return folder.resolve()


def _load_order(files: Sequence[Path]) -> list[Path]:
    """Likely detector and recognizer first, so a full pack opens only the two it needs."""

    def rank(path: Path) -> tuple[int, str]:
        name = path.name.lower()
        if name.startswith(("det_", "scrfd", "retinaface")):
            return (0, name)
        if any(key in name for key in ("w600k", "glint", "arcface", "r50", "r100", "rec")):
            return (1, name)
        return (2, name)

    return sorted(files, key=rank)


# --- the InsightFace embedder ------------------------------------------------------------


class InsightFaceEmbedder:
    """SCRFD detection, five-point alignment and ArcFace embedding, as InsightFace does them."""

    def __init__(
        self,
        folder: Path,
        *,
        det_size: int = 640,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        det_thresh: float = 0.5,
        face_model: str | None = None,
    ) -> None:
        import onnxruntime

        # onnxruntime warns per session about unused initializers and provider fallbacks.
        onnxruntime.set_default_logger_severity(3)
        self.folder = Path(folder)
        self.providers = list(providers)
        self.det_size = det_size
        self.name = f"insightface:{self.folder.name}"
        self.face_model = face_model or str(self.folder)
        self.detector, self.recognizer = self._load()
        if not getattr(self.detector, "use_kps", True):
            raise _unavailable(
                self.face_model,
                self.folder,
                f"the detection model {Path(self.detector.model_file).name} gives no facial "
                "keypoints, and ArcFace alignment needs five",
            )
        ctx_id = 0 if "CUDAExecutionProvider" in self.providers else -1
        self.detector.prepare(ctx_id, input_size=(det_size, det_size), det_thresh=det_thresh)
        self.recognizer.prepare(ctx_id)

    def _load(self) -> tuple[object, object]:
        from insightface.model_zoo import model_zoo
        from insightface.model_zoo.package_manifest import has_model_package_manifest

        if has_model_package_manifest(self.folder):  # insightface 2.x manifest packages
            try:
                return tuple(  # type: ignore[return-value]
                    model_zoo.get_model(str(self.folder), model_task=task, providers=self.providers)
                    for task in ("detection", "recognition")
                )
            except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise _unavailable(
                    self.face_model, self.folder, f"its manifest.json gives no usable model: {exc}"
                ) from exc

        files = sorted(self.folder.glob("*.onnx"))
        found: dict[str, object] = {}
        for path in _load_order(files):
            try:
                model = model_zoo.get_model(str(path), providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise _unavailable(
                    self.face_model, self.folder, f"cannot load {path.name}: {exc}"
                ) from exc
            task = getattr(model, "taskname", None)
            if task in ("detection", "recognition") and task not in found:
                found[task] = model
            if len(found) == 2:
                return found["detection"], found["recognition"]
        missing = [task for task in ("detection", "recognition") if task not in found]
        seen = ", ".join(p.name for p in files) or "no .onnx file"
        raise _unavailable(
            self.face_model, self.folder, f"no {' and no '.join(missing)} model (found {seen})"
        )

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        from insightface.app.common import Face

        bgr = np.ascontiguousarray(image[:, :, ::-1])  # InsightFace works in OpenCV's BGR
        bboxes, kpss = self.detector.detect(bgr, max_num=0)
        faces: list[DetectedFace] = []
        with warnings.catch_warnings():
            # insightface 2.1's alignment calls scikit-image's deprecated estimate() per face.
            warnings.filterwarnings(
                "ignore", message=".*estimate.*deprecated", category=FutureWarning
            )
            for i in range(bboxes.shape[0]):
                face = Face(bbox=bboxes[i, :4], kps=kpss[i], det_score=bboxes[i, 4])
                embedding = np.asarray(self.recognizer.get(bgr, face), dtype=np.float32).ravel()
                norm = float(np.linalg.norm(embedding))
                if not np.isfinite(norm) or norm == 0.0:
                    continue  # nothing to compare; not a usable face
                x1, y1, x2, y2 = (float(v) for v in bboxes[i, :4])
                faces.append(
                    DetectedFace(
                        bbox=(x1, y1, x2, y2),
                        det_score=float(bboxes[i, 4]),
                        embedding=embedding / norm,
                    )
                )
        return faces


# --- process cache --------------------------------------------------------------------------

_cache: dict[tuple[object, ...], FaceEmbedder] = {}
_cache_lock = threading.Lock()


def load_face_embedder(
    models: ScoringModels | None = None, *, det_thresh: float = 0.5
) -> FaceEmbedder:
    """The identity model the ScoringModels block names (``face_embedder``), loaded once per
    process: InsightFace (cached by folder, detector size, providers, detection threshold)
    or CCIP. Raises FaceModelUnavailable, without trying to download, when the models are not
    on disk."""
    if models is None:
        from blocks.scoring import ScoringModels

        models = ScoringModels()
    providers = onnx_providers(models.device)
    if models.face_embedder == "ccip":
        from tasks.scoring.ccip import CcipEmbedder, ccip_folder

        folder = ccip_folder(models)
        key: tuple[object, ...] = ("ccip", str(folder), tuple(providers))
        with _cache_lock:
            if key not in _cache:
                _cache[key] = CcipEmbedder(folder, providers=providers)
            return _cache[key]
    folder = resolve_face_model_dir(models.face_model, models.face_root)
    key = (str(folder), models.face_det_size, tuple(providers), float(det_thresh))
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = InsightFaceEmbedder(
                folder,
                det_size=models.face_det_size,
                providers=providers,
                det_thresh=det_thresh,
                face_model=models.face_model,
            )
            _cache[key] = embedder
        return embedder


def clear_face_embedder_cache() -> None:
    """Forget loaded face models (after the files on disk changed)."""
    with _cache_lock:
        _cache.clear()
