"""Where a scoring model runs (device, batch size, fp16), and the per-process model cache."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tasks.scoring.loading.errors import ModelUnavailable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels


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


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)``, ``size`` at a time (the last one shorter)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# --------------------------------------------------------------------------- cache

_cache: dict[tuple[Any, ...], Any] = {}
_cache_lock = threading.Lock()
_key_locks: dict[tuple[Any, ...], threading.Lock] = {}


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """``build()`` once per process for ``key``, then the same object every time."""
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
