"""Lazy, per-process cached loading of the scoring models (CLIP, LAION aesthetic head, LPIPS,
DINO), device selection, and the image / frame inputs those models take.

Every loader takes a ``ScoringModels`` block and caches what it builds under a key made of the
block fields that change the weights (plus the resolved device), so a worker loads ViT-L/14 once
however many cuts it scores. A model that cannot be had raises ONE ``ModelUnavailable`` naming
the model, the file or folder expected, and which block field or path provides it. Downloads
happen only the way each library normally does them, and only after the download host answered a
quick connection probe: huggingface_hub alone retries for about 23 s per file when offline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import threading
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image, ImageSequence

from blocks.scoring import (
    AESTHETIC_HEAD_FILE,
    AESTHETIC_HEAD_URL,
    DINO_WEIGHTS_URL,
    ScoringModels,
)
from tasks.torchvision_compat import ensure_torchvision_importable

if TYPE_CHECKING:
    import lpips

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


# --------------------------------------------------------------------------- errors


class ModelUnavailable(RuntimeError):
    """A scoring model cannot be loaded: says which, where it was expected, and how to fix it."""

    def __init__(self, model: str, expected: str, how: str, problem: str = "not found") -> None:
        self.model = model
        self.expected = expected
        self.how = how
        self.problem = problem
        super().__init__(f"{model}: {problem}: {expected}. {how}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions; rebuild from the parts, not from the message.
        return (type(self), (self.model, self.expected, self.how, self.problem))


class FrameInputError(ValueError):
    """An image or clip given to a metric cannot be read as RGB frames."""


# --------------------------------------------------------------------------- device


def resolve_device(setting: str) -> torch.device:
    """``auto`` is CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(
            "CUDA device",
            "torch.cuda.is_available() is False",
            "Set ScoringModels.device to 'auto' or 'cpu', or install a CUDA build of torch.",
            problem="no GPU visible to torch",
        )
    return torch.device(setting)


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs for one call: device, batch size, fp16 autocast."""

    device: torch.device
    batch_size: int
    half: bool

    @classmethod
    def of(cls, models: ScoringModels) -> Runtime:
        device = resolve_device(models.device)
        return cls(device, models.batch_size, models.half_precision and device.type == "cuda")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        # fp16 only on CUDA: CPU half matmuls are slow and lossy.
        if self.half:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()


# --------------------------------------------------------------------------- cache

_cache: dict[tuple[Any, ...], Any] = {}
_cache_lock = threading.Lock()
_key_locks: dict[tuple[Any, ...], threading.Lock] = {}


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    # One lock per key: two tasks asking for the same model wait for one load, while
    # different models still load side by side.
    if key in _cache:
        return _cache[key]
    with _cache_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def clear_model_cache() -> None:
    """Forget every loaded model (tests, benchmarks, or after replacing weight files)."""
    with _cache_lock:
        _cache.clear()
        _key_locks.clear()


def loaded_model_keys() -> list[tuple[Any, ...]]:
    return list(_cache)


# --------------------------------------------------------------------------- downloads


def models_dir() -> Path:
    """The studio's own model folder: ``$XDG_CACHE_HOME/tower-anime/models``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "tower-anime" / "models"


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _host_answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host (or the HTTPS proxy) opens within timeout.

    Runs in a thread because name resolution has no timeout of its own."""
    proxy = urllib.request.getproxies().get(urlparse(url).scheme)
    target = urlparse(proxy if proxy else url)
    host = target.hostname
    if not host:
        return False
    port = target.port or (443 if target.scheme == "https" else 80)
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(answered and answered[0])


def _download_blocker(models: ScoringModels, url: str) -> str | None:
    """Why a download from ``url`` will not be tried, or None when it may be."""
    if not models.allow_downloads:
        return "downloads are off (ScoringModels.allow_downloads is false)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if not _host_answers(url):
        return f"{urlparse(url).hostname} does not answer (offline?)"
    return None


def _download_file(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the target and rename, so an interrupted fetch never looks complete.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(url, tmp, progress=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fetch_or_fail(
    models: ScoringModels, url: str, target: Path, *, model: str, field: str
) -> None:
    """Download ``url`` to ``target`` when allowed and online, else raise ModelUnavailable."""
    how = f"Download {url} to {target}, or set ScoringModels.{field} to a local copy of that file."
    blocker = _download_blocker(models, url)
    if blocker:
        raise ModelUnavailable(model, str(target), how, problem=f"not found ({blocker})")
    try:
        _download_file(url, target)
    except Exception as exc:  # any network or disk failure: say what and where
        raise ModelUnavailable(model, str(target), how, problem=f"download failed ({exc})") from exc


def _load_state_dict(path: Path, *, model: str, how: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelUnavailable(model, str(path), how, problem=f"unreadable ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelUnavailable(model, str(path), how, problem="not a state dict")
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return state


# --------------------------------------------------------------------------- embedders


class ImageEmbedder(Protocol):
    """Turns images into L2-normalised feature rows, in batches."""

    name: str

    def embed(self, images: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """(N, D) float32 CPU tensor, each row of unit length."""
        ...


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _as_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(image)


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    return image if isinstance(image, np.ndarray) else np.asarray(_as_pil(image))


@dataclass
class ClipEmbedder:
    """open_clip image tower with its own preprocessing."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    runtime: Runtime
    name: str

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        rows = []
        for part in _batches(len(images), self.runtime.batch_size):
            batch = torch.stack([self.preprocess(_as_pil(im)) for im in images[part]])
            with self.runtime.autocast():
                features = self.model.encode_image(batch.to(self.runtime.device))
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        if not rows:
            return torch.empty(0, self.embed_dim)
        return torch.cat(rows)


@dataclass
class DinoEmbedder:
    """DINO ViT CLS features with VBench's preprocessing (shorter side 224, no crop)."""

    model: torch.nn.Module
    runtime: Runtime
    name: str
    short_side: int = 224

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406], device=self.runtime.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=self.runtime.device).view(1, 3, 1, 1)
        rows = []
        for part in _batches(len(images), self.runtime.batch_size):
            arrays = np.stack([_as_array(im) for im in images[part]])
            x = torch.from_numpy(arrays).to(self.runtime.device).permute(0, 3, 1, 2).float() / 255
            h, w = x.shape[-2:]
            scale = self.short_side / min(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=False)
            with self.runtime.autocast():
                features = self.model((x - mean) / std)
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        if not rows:
            return torch.empty(0, 0)
        return torch.cat(rows)


# --------------------------------------------------------------------------- CLIP

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or "/" in value
        or value.startswith(("~", "."))
        or value.lower().endswith(_CHECKPOINT_SUFFIXES)
    )


def _clip_source_hint(tag_cfg: dict[str, Any]) -> str:
    hf = tag_cfg.get("hf_hub", "")
    if hf:
        repo, filename = os.path.split(hf)
        return f"https://huggingface.co/{repo} ({filename or 'open_clip_model.safetensors'})"
    return tag_cfg.get("url", "") or "the open_clip release page"


def _cached_clip_tag(tag_cfg: dict[str, Any], cache_dir: str | None) -> str | None:
    """The local file for a pretrained tag if a previous download left it, else None."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if tag_cfg.get("file"):
        return tag_cfg["file"] if os.path.isfile(tag_cfg["file"]) else None
    hf = tag_cfg.get("hf_hub", "")
    if hf:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hf)
        filename = filename or HF_WEIGHTS_NAME
        candidates = [filename]
        if filename == HF_WEIGHTS_NAME:
            candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        for name in candidates:
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = tag_cfg.get("url", "")
    if url:
        folder = cache_dir or os.path.expanduser("~/.cache/clip")
        path = os.path.join(folder, os.path.basename(url))
        if os.path.isfile(path):
            return path
    return None


def _clip_checkpoint(models: ScoringModels) -> tuple[str, dict[str, Any]]:
    """Local checkpoint file for the block's CLIP setting, and the tag's config (or {})."""
    import open_clip

    arch = models.clip_model.replace("/", "-")
    model = f"open_clip {arch}"
    pretrained = models.clip_pretrained.strip()
    expanded = os.path.expanduser(pretrained)
    if os.path.isfile(expanded):
        return expanded, {}
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
    if not tag_cfg:
        if _looks_like_path(pretrained):
            raise ModelUnavailable(
                model,
                expanded,
                "Put the checkpoint there, or set ScoringModels.clip_pretrained to an existing "
                "checkpoint file or to a pretrained tag.",
                problem="checkpoint file not found",
            )
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelUnavailable(
            model,
            f"pretrained tag {pretrained!r}",
            f"Set ScoringModels.clip_pretrained to one of {tags or '(no tags for this model)'} "
            "or to a local checkpoint file.",
            problem="unknown pretrained tag",
        )
    found = _cached_clip_tag(tag_cfg, models.clip_cache_dir)
    if found:
        return found, tag_cfg
    source = _clip_source_hint(tag_cfg)
    from huggingface_hub.constants import ENDPOINT, HF_HUB_CACHE

    cache = models.clip_cache_dir or HF_HUB_CACHE
    how = (
        f"Download the weights from {source} and set ScoringModels.clip_pretrained to the file, "
        f"or run once with internet so they land in {cache}."
    )
    probe_url = ENDPOINT if tag_cfg.get("hf_hub") else tag_cfg.get("url", ENDPOINT)
    blocker = _download_blocker(models, probe_url)
    expected = f"weights for tag {pretrained!r} in {cache}"
    if blocker:
        raise ModelUnavailable(model, expected, how, problem=f"not downloaded ({blocker})")
    try:
        path = open_clip.download_pretrained(tag_cfg, cache_dir=models.clip_cache_dir)
    except Exception as exc:
        raise ModelUnavailable(model, expected, how, problem=f"download failed ({exc})") from exc
    if not path or not os.path.isfile(path):
        raise ModelUnavailable(model, expected, how, problem="download gave no file")
    return path, tag_cfg


def _build_clip(models: ScoringModels, device: torch.device) -> tuple[Any, Any, str]:
    ensure_torchvision_importable()
    import open_clip

    arch = models.clip_model
    if arch.startswith("hf-hub:"):
        from huggingface_hub.constants import ENDPOINT

        blocker = _download_blocker(models, ENDPOINT)
        if blocker:
            raise ModelUnavailable(
                f"open_clip {arch}",
                arch,
                "Download the repository and set ScoringModels.clip_model to "
                "'local-dir:/path/to/folder'.",
                problem=f"cannot fetch ({blocker})",
            )
    if arch.startswith(("hf-hub:", "local-dir:")):
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, device=device)
        except Exception as exc:
            raise ModelUnavailable(
                f"open_clip {arch}",
                arch.split(":", 1)[1],
                "Check ScoringModels.clip_model.",
                problem=f"could not load ({exc})",
            ) from exc
        return model, preprocess, arch
    if open_clip.get_model_config(arch.replace("/", "-")) is None:
        raise ModelUnavailable(
            f"open_clip {arch}",
            f"architecture {arch!r}",
            "Set ScoringModels.clip_model to an open_clip architecture (open_clip.list_models()).",
            problem="unknown architecture",
        )
    path, tag_cfg = _clip_checkpoint(models)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch,
            pretrained=path,
            device=device,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            # A tag's own preprocessing (mean/std/resize) still applies to its local file.
            image_mean=tag_cfg.get("mean"),
            image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"),
            image_resize_mode=tag_cfg.get("resize_mode"),
        )
    except Exception as exc:
        raise ModelUnavailable(
            f"open_clip {arch}",
            path,
            "Check that ScoringModels.clip_pretrained holds weights for ScoringModels.clip_model "
            "(OpenAI weights from a file need the '-quickgelu' variant of the architecture).",
            problem=f"checkpoint does not load ({str(exc).splitlines()[0][:300]})",
        ) from exc
    label = f"{arch}/{models.clip_pretrained if tag_cfg else os.path.basename(path)}"
    return model, preprocess, label


def load_clip(models: ScoringModels) -> ClipEmbedder:
    """The block's open_clip model, loaded once per process and device."""
    runtime = Runtime.of(models)
    key = ("clip", models.clip_model, models.clip_pretrained, models.clip_cache_dir, runtime.device)

    def build() -> tuple[Any, Any, str]:
        model, preprocess, label = _build_clip(models, runtime.device)
        model.eval().requires_grad_(False)
        logger.info("Loaded CLIP %s on %s", label, runtime.device)
        return model, preprocess, label

    model, preprocess, label = _cached(key, build)
    return ClipEmbedder(model, preprocess, runtime, f"open_clip {label}")


# --------------------------------------------------------------------------- aesthetic head


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


def aesthetic_head_path(models: ScoringModels) -> Path:
    if models.aesthetic_head:
        return Path(models.aesthetic_head).expanduser()
    return models_dir() / AESTHETIC_HEAD_FILE


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
            _fetch_or_fail(models, AESTHETIC_HEAD_URL, path, model=model, field="aesthetic_head")
        state = _load_state_dict(path, model=model, how=how)
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

    return _cached(("aesthetic", str(path), runtime.device), build)


# --------------------------------------------------------------------------- LPIPS

_LPIPS_BACKBONES = {
    "alex": "AlexNet_Weights",
    "vgg": "VGG16_Weights",
    "squeeze": "SqueezeNet1_1_Weights",
}


@dataclass
class LpipsNet:
    """A loaded ``lpips.LPIPS`` and where it runs."""

    module: lpips.LPIPS
    runtime: Runtime
    name: str


def _lpips_backbone_file(net: str) -> tuple[str, Path]:
    import torchvision.models

    weights = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1
    return weights.url, torch_hub_checkpoints() / os.path.basename(weights.url)


def load_lpips(models: ScoringModels) -> LpipsNet:
    """``lpips.LPIPS(net=lpips_net)``; its torchvision backbone comes from the torch hub cache."""
    runtime = Runtime.of(models)
    net = models.lpips_net
    key = ("lpips", net, models.lpips_pnet_rand, runtime.device)

    def build() -> Any:
        ensure_torchvision_importable()
        import lpips

        model = f"LPIPS {net} backbone"
        if not models.lpips_pnet_rand:
            url, target = _lpips_backbone_file(net)
            if not target.is_file():
                how = (
                    f"Put torchvision's {target.name} (from {url}) in the torch hub cache folder "
                    f"{target.parent} (TORCH_HOME moves it), or set "
                    "ScoringModels.lpips_pnet_rand for a random backbone (tests only)."
                )
                blocker = _download_blocker(models, url)
                if blocker:
                    raise ModelUnavailable(
                        model, str(target), how, problem=f"not found ({blocker})"
                    )
        # A random backbone is seeded so its distances repeat from run to run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            try:
                with warnings.catch_warnings():
                    # lpips 0.1.4 still passes torchvision's deprecated ``pretrained=`` flag.
                    warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                    module = lpips.LPIPS(net=net, pnet_rand=models.lpips_pnet_rand, verbose=False)
            except Exception as exc:
                raise ModelUnavailable(
                    model,
                    str(torch_hub_checkpoints()),
                    "Check the torch hub cache, or set ScoringModels.lpips_pnet_rand (tests only).",
                    problem=f"could not load ({exc})",
                ) from exc
        return module.eval().requires_grad_(False).to(runtime.device)

    module = _cached(key, build)
    suffix = " (random backbone)" if models.lpips_pnet_rand else ""
    return LpipsNet(module, runtime, f"lpips {net} v0.1{suffix}")


# --------------------------------------------------------------------------- DINO


def dino_weights_path(models: ScoringModels) -> Path:
    if models.dino_weights:
        return Path(models.dino_weights).expanduser()
    return torch_hub_checkpoints() / os.path.basename(DINO_WEIGHTS_URL)


def _dino_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    # Full DINO training checkpoints keep the backbone under teacher/student with prefixes.
    for branch in ("teacher", "student"):
        if isinstance(state.get(branch), dict):
            state = state[branch]
            break
    cleaned = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("backbone.")
        if not k.startswith("head."):
            cleaned[k] = v
    return cleaned


def load_dino(models: ScoringModels) -> DinoEmbedder:
    """DINO ViT backbone (timm architecture ``dino_arch``) from ``dino_weights``."""
    runtime = Runtime.of(models)
    path = dino_weights_path(models)
    model = f"DINO {models.dino_arch}"

    def build() -> torch.nn.Module:
        ensure_torchvision_importable()
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn

        how = (
            f"Download {DINO_WEIGHTS_URL} to {path}, or set ScoringModels.dino_weights to the "
            "file (or set ScoringModels.subject_backbone to 'clip')."
        )
        if not path.is_file():
            if models.dino_weights:
                raise ModelUnavailable(model, str(path), how)
            _fetch_or_fail(models, DINO_WEIGHTS_URL, path, model=model, field="dino_weights")
        try:
            net = timm.create_model(
                models.dino_arch, pretrained=False, num_classes=0, dynamic_img_size=True
            )
        except Exception as exc:
            raise ModelUnavailable(
                model,
                f"timm architecture {models.dino_arch!r}",
                "Set ScoringModels.dino_arch to a timm ViT name.",
                problem=f"unknown architecture ({exc})",
            ) from exc
        state = _dino_state(_load_state_dict(path, model=model, how=how))
        try:
            net.load_state_dict(checkpoint_filter_fn(state, net), strict=True)
        except Exception as exc:
            problem = f"weights do not fit {models.dino_arch} ({str(exc).splitlines()[0][:300]})"
            raise ModelUnavailable(model, str(path), how, problem=problem) from exc
        return net.eval().requires_grad_(False).to(runtime.device)

    net = _cached(("dino", models.dino_arch, str(path), runtime.device), build)
    return DinoEmbedder(net, runtime, f"dino {models.dino_arch}")


def load_subject_embedder(models: ScoringModels) -> ImageEmbedder:
    """The feature backbone subject consistency uses: CLIP by default, DINO when chosen."""
    if models.subject_backbone == "dino":
        return load_dino(models)
    return load_clip(models)


# --------------------------------------------------------------------------- inputs

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray
FramesLike = np.ndarray | Sequence[ImageLike] | str | os.PathLike[str]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def _natural_key(path: Path) -> list[Any]:
    # frame_2 before frame_10, as renders are numbered without padding.
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def _array_to_rgb(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise FrameInputError(f"{where}: expected uint8 pixels (0-255), got dtype {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.ndim not in (3, 4) or array.shape[-1] not in (3, 4):
        raise FrameInputError(f"{where}: expected H x W x 3 pixels, got shape {array.shape}")
    return array[..., :3]


def load_image(image: ImageLike, *, where: str = "image") -> Image.Image:
    """An RGB PIL image from a path, a PIL image or an H x W x 3 uint8 array."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(_array_to_rgb(image, where)))
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FrameInputError(f"{where}: no such image file: {path}")
        try:
            with Image.open(path) as opened:
                return opened.convert("RGB")
        except OSError as exc:
            raise FrameInputError(f"{where}: not a readable image: {path} ({exc})") from exc
    raise FrameInputError(f"{where}: expected a path, PIL image or array, got {type(image)!r}")


def _frames_from_video(path: Path) -> list[np.ndarray]:
    try:
        import cv2
    except ImportError as exc:
        raise FrameInputError(f"{path}: reading video needs opencv-python") from exc
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise FrameInputError(f"{path}: no frames could be decoded")
    return frames


def _frames_from_path(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )
        if not files:
            raise FrameInputError(f"{path}: folder holds no frame images ({IMAGE_SUFFIXES})")
        return [np.asarray(load_image(f, where=str(f))) for f in files]
    if not path.is_file():
        raise FrameInputError(f"no such clip file or folder: {path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _frames_from_video(path)
    try:
        with Image.open(path) as opened:  # animated webp / png / gif, or a single still
            return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(opened)]
    except OSError as exc:
        raise FrameInputError(f"{path}: not a readable video or animated image ({exc})") from exc


def load_frames(frames: FramesLike) -> np.ndarray:
    """A clip as one T x H x W x 3 uint8 array: from such an array, a list of images, a video
    file, an animated image, or a folder of frame images (natural order)."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:  # T x H x W grey
            frames = frames[..., None].repeat(3, axis=-1)
        if frames.ndim != 4:
            raise FrameInputError(f"clip: expected T x H x W x 3 pixels, got shape {frames.shape}")
        return np.ascontiguousarray(_array_to_rgb(frames, "clip"))
    if isinstance(frames, str | os.PathLike):
        items: list[np.ndarray] = _frames_from_path(Path(frames))
    else:
        items = [
            _array_to_rgb(f, f"frame {i}")
            if isinstance(f, np.ndarray)
            else np.asarray(load_image(f, where=f"frame {i}"))
            for i, f in enumerate(frames)
        ]
    if not items:
        raise FrameInputError("clip: no frames")
    size = items[0].shape
    for i, item in enumerate(items):
        if item.shape != size:
            raise FrameInputError(f"clip: frame {i} is {item.shape[:2]}, frame 0 is {size[:2]}")
    return np.stack(items)


# --------------------------------------------------------------------------- stand-in models

STAND_IN_CLIP = "anime-stand-in-clip"


def write_stand_in_models(folder: Path, *, seed: int = 0) -> ScoringModels:
    """Write tiny random-weight models to ``folder`` and return a block that loads them.

    For offline tests, benchmarks and dry runs of the scoring code: a small open_clip ViT
    (registered as ``anime-stand-in-clip``), an aesthetic head of the published shape whose
    output sits mid-scale, and LPIPS with a random backbone. They load through exactly the same
    code as the real weights; their scores mean nothing."""
    ensure_torchvision_importable()
    import json

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
    return ScoringModels(
        clip_model=STAND_IN_CLIP,
        clip_pretrained=str(clip_path),
        aesthetic_head=str(head_path),
        lpips_pnet_rand=True,
        allow_downloads=False,
    )
