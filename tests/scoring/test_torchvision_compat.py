"""The CPU torch + CUDA torchvision wheel pair: the shim makes lpips and open_clip importable."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_lpips_and_open_clip_import_in_a_fresh_process_after_the_shim() -> None:
    done = _run(
        "from tasks.scoring.loading import torchvision_compat\n"
        "applied = torchvision_compat.ensure_torchvision_importable()\n"
        "import lpips, open_clip, torchvision\n"
        "print('ok', applied, torchvision.__version__)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


def test_plain_torchvision_import_is_what_the_shim_repairs() -> None:
    # On a matching torch/torchvision pair the extension loads and there is nothing to repair.
    probe = _run(
        "from tasks.scoring.loading.torchvision_compat import torchvision_extension_loads\n"
        "print(torchvision_extension_loads())"
    )
    if probe.stdout.strip() == "True":
        pytest.skip("torchvision's C extension loads here; the shim stays idle")
    plain = _run("import torchvision")
    assert plain.returncode != 0
    assert "torchvision::nms does not exist" in plain.stderr
