"""Fixtures for the ComfyUI client tests: a fresh protocol-faithful server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.comfyui_server import ComfyUITestServer


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[ComfyUITestServer]:
    with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.1) as server:
        yield server


@pytest.fixture
def slow_comfy(tmp_path: Path) -> Iterator[ComfyUITestServer]:
    """Renders take 2 s: long enough to interrupt, queue behind or stall in the middle."""
    with ComfyUITestServer(tmp_path / "slow-comfy", render_time_s=2.0, progress_steps=10) as server:
        yield server
