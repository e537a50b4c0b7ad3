"""Make ``import torchvision`` (and so ``import lpips`` / ``import open_clip``) work on CPU torch.

PyPI's torchvision 0.28 wheel is built against CUDA torch: on the CPU-only torch this project
pins, its ``_C`` extension fails to load (it links ``libtorch_cuda.so``). torchvision then
still runs ``torch.library.register_fake("torchvision::nms")`` at import time, which needs the
operator schema the extension would have defined, and the import dies with
``RuntimeError: operator torchvision::nms does not exist``.

The scoring models only use torchvision's model definitions and transforms, never its C ops,
so defining the two schemas that are touched unconditionally at import (``nms`` and ``qnms``)
is enough. When the extension does load (a matching GPU install) this module does nothing.
Calling a C op after the shim (``torchvision.ops.nms``) still fails, with torch's own
"no kernel registered" error, which is the truth.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

import torch

# Schemas exactly as torchvision's C++ registers them (torchvision/csrc/ops/nms.cpp).
_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# Kept alive for the life of the process: dropping a Library deregisters its definitions.
_library: torch.library.Library | None = None


def _extension_path() -> str | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib_dir = list(spec.submodule_search_locations)[0]
    finder = importlib.machinery.FileFinder(
        lib_dir,
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    ext_spec = finder.find_spec("_C")
    return ext_spec.origin if ext_spec is not None else None


def _has_schema(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def torchvision_extension_loads() -> bool:
    """Whether torchvision's C extension loads into this torch (loading it if so)."""
    path = _extension_path()
    if path is None:
        return False
    if os.name == "nt":  # torchvision adds its folder to the DLL search path the same way
        os.add_dll_directory(os.path.dirname(path))
    try:
        torch.ops.load_library(path)
    except (OSError, ImportError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Register the missing torchvision operator schemas if its C extension cannot load.

    Returns True when the shim was applied (in this call or an earlier one), False when nothing
    was needed. Must run before the first ``import torchvision``; harmless afterwards.
    """
    global _library
    if _library is not None:
        return True
    if "torchvision" in sys.modules or all(_has_schema(n) for n in _SCHEMAS):
        return False
    if importlib.util.find_spec("torchvision") is None or torchvision_extension_loads():
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        if not _has_schema(name):
            _library.define(schema)
    return True
