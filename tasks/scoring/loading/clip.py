"""open_clip image towers (used by aesthetic, style adherence and subject consistency).

The block's ``clip_model`` / ``clip_pretrained`` are resolved to a local checkpoint first: a file
path, a tag already in the cache, or (when allowed and online) a download the way open_clip
normally does it. Anything missing is one ``ModelUnavailable`` naming what goes where.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from tasks.scoring.images import as_pil
from tasks.scoring.loading.device import Runtime, batches, cached
from tasks.scoring.loading.downloads import download_blocker
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.places import models_dir
from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

logger = logging.getLogger(__name__)


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
        for part in batches(len(images), self.runtime.batch_size):
            batch = torch.stack([self.preprocess(as_pil(im)) for im in images[part]])
            with self.runtime.autocast():
                features = self.model.encode_image(batch.to(self.runtime.device))
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        if not rows:
            return torch.empty(0, self.embed_dim)
        return torch.cat(rows)


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


def clip_studio_path(repo: str, filename: str) -> Path:
    """Where a tag's weights go when copied by hand: ``<models dir>/clip/<org>--<repo>/``."""
    return models_dir() / "clip" / repo.replace("/", "--") / filename


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
        # Copied by hand or by `anime models fetch --from`: the studio's own model folder.
        for name in candidates:
            placed = clip_studio_path(repo, name)
            if placed.is_file():
                return str(placed)
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
        f"Run `anime models fetch clip` where there is internet, or download the weights from "
        f"{source} and set ScoringModels.clip_pretrained to the file (its activation is read "
        f"from the open_clip_config.json beside it, or the file name), or copy a cache "
        f"another machine filled into {cache}."
    )
    probe_url = ENDPOINT if tag_cfg.get("hf_hub") else tag_cfg.get("url", ENDPOINT)
    blocker = download_blocker(models, probe_url)
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


# Where open_clip looks for weights in a ``local-dir:`` folder (factory._find_checkpoint_in_dir).
_LOCAL_DIR_WEIGHTS = (".safetensors", ".bin", ".pth")


def _check_local_dir(arch: str) -> None:
    """A ``local-dir:`` folder open_clip would build with random weights is an error here.

    open_clip only warns (through the root logger) when the folder has a config but no weights
    it reads: ``*.pt`` files (OpenAI's own name) are not among them."""
    folder = arch.split(":", 1)[1]
    path = os.path.expanduser(folder)
    model = f"open_clip {arch}"
    expected = (
        f"{path}/open_clip_config.json and its weights ({path}/open_clip_model.safetensors, "
        "open_clip_pytorch_model.bin or another *.safetensors / *.bin / *.pth)"
    )
    if not os.path.isdir(path):
        raise ModelUnavailable(
            model, expected, "Check ScoringModels.clip_model.", problem="folder not found"
        )
    names = os.listdir(path)
    if "open_clip_config.json" not in names:
        raise ModelUnavailable(
            model,
            expected,
            "Copy the model repository's open_clip_config.json beside the weights.",
            problem="no open_clip_config.json",
        )
    if not any(n.endswith(_LOCAL_DIR_WEIGHTS) for n in names):
        other = sorted(n for n in names if n.endswith(_CHECKPOINT_SUFFIXES))
        how = "Put the weights in that folder under one of those names"
        if other:
            how += (
                f" ({', '.join(other)} is not read from a folder: rename it, or set "
                "ScoringModels.clip_pretrained to the file and clip_model to its architecture)"
            )
        raise ModelUnavailable(
            model,
            expected,
            how + "; nothing is scored with randomly initialised weights.",
            problem="no weights open_clip reads",
        )


def _is_torchscript(path: str) -> bool:
    """OpenAI's own CLIP releases are TorchScript archives (``code/`` and ``constants.pkl``)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") for n in archive.namelist())


# Buffers and constants a TorchScript CLIP carries that are not weights of the open_clip model.
_TORCHSCRIPT_EXTRAS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def _plain_state_dict(path: str) -> str:
    """A TorchScript release's weights as a plain state dict in a temporary file.

    torch.load opens TorchScript archives only with weights_only off, and the archive's state
    dict carries constants (attn_mask, input_resolution ...) open_clip's strict load refuses."""
    import tempfile

    state = torch.jit.load(path, map_location="cpu").state_dict()
    state = {k: v for k, v in state.items() if k not in _TORCHSCRIPT_EXTRAS}
    fd, tmp = tempfile.mkstemp(suffix=".pth")
    os.close(fd)
    torch.save(state, tmp)
    return tmp


def _openai_file_names() -> set[str]:
    import open_clip

    names = set()
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        if tag == "openai" and cfg.get("url"):
            names.add(os.path.basename(cfg["url"]))
    return names


def checkpoint_quick_gelu(path: str, tag_cfg: dict[str, Any]) -> tuple[bool, str]:
    """Whether the checkpoint was trained with QuickGELU, and how that was found out.

    The activation is not stored in the weights, and loading OpenAI-trained weights with GELU
    gives plausible but wrong features. In order: the tag's own setting, the
    ``open_clip_config.json`` beside the file (Hugging Face snapshots and exported folders),
    the Hugging Face cache folder the file sits in (its repository's tag), OpenAI's file names
    and TorchScript archives (only OpenAI publishes those)."""
    import json

    import open_clip

    if tag_cfg:
        return bool(tag_cfg.get("quick_gelu", False)), "the pretrained tag"
    config = os.path.join(os.path.dirname(path), "open_clip_config.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
        cfg = data.get("model_cfg", data)
        return bool(cfg.get("quick_gelu", False)), config
    parts = os.path.realpath(path).split(os.sep) + os.path.abspath(path).split(os.sep)
    repos = {
        p.removeprefix("models--").replace("--", "/", 1) for p in parts if p.startswith("models--")
    }
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        repo = "/".join(cfg.get("hf_hub", "").split("/")[:2])
        if repo and repo in repos:
            return bool(cfg.get("quick_gelu", False)), f"its Hugging Face repository {repo}"
    if os.path.basename(path) in _openai_file_names() or _is_torchscript(path):
        return True, "an OpenAI release file"
    return False, "the architecture's own config"


def _build_clip(models: ScoringModels, device: torch.device) -> tuple[Any, Any, str]:
    ensure_torchvision_importable()
    import open_clip

    arch = models.clip_model
    if arch.startswith("hf-hub:"):
        from huggingface_hub.constants import ENDPOINT

        blocker = download_blocker(models, ENDPOINT)
        if blocker:
            raise ModelUnavailable(
                f"open_clip {arch}",
                arch,
                "Download the repository (open_clip_config.json and its .safetensors or .bin "
                "weights) and set ScoringModels.clip_model to 'local-dir:/path/to/folder'.",
                problem=f"cannot fetch ({blocker})",
            )
    if arch.startswith("local-dir:"):
        _check_local_dir(arch)
    if arch.startswith(("hf-hub:", "local-dir:")):
        try:
            # require_pretrained: open_clip would otherwise build random weights and only warn.
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, device=device, require_pretrained=True, cache_dir=models.clip_cache_dir
            )
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
    quick_gelu, why = checkpoint_quick_gelu(path, tag_cfg)
    if quick_gelu and not (open_clip.get_model_config(arch.replace("/", "-")) or {}).get(
        "quick_gelu"
    ):
        logger.info("CLIP %s: QuickGELU, as %s says its weights were trained", arch, why)
    how = "Check that ScoringModels.clip_pretrained holds weights for ScoringModels.clip_model."
    try:
        weights = _plain_state_dict(path) if _is_torchscript(path) else path
    except Exception as exc:
        problem = f"TorchScript archive does not load ({exc})"
        raise ModelUnavailable(f"open_clip {arch}", path, how, problem=problem) from exc
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch,
            pretrained=weights,
            device=device,
            force_quick_gelu=quick_gelu,
            require_pretrained=True,
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
            how,
            problem=f"checkpoint does not load ({' '.join(str(exc).split())[:300]})",
        ) from exc
    finally:
        if weights != path:
            os.unlink(weights)
    label = f"{arch}/{models.clip_pretrained if tag_cfg else os.path.basename(path)}"
    if quick_gelu and "quickgelu" not in arch:
        label += " (QuickGELU)"
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

    model, preprocess, label = cached(key, build)
    return ClipEmbedder(model, preprocess, runtime, f"open_clip {label}")
