"""Stand-in scoring models built on disk once per session, and empty model caches."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from blocks.scoring import ScoringModels
from tasks.models import write_stand_in_models


@pytest.fixture(scope="session")
def stand_in_models(tmp_path_factory: pytest.TempPathFactory) -> ScoringModels:
    """Tiny random-weight CLIP, aesthetic head and LPIPS, loaded by the real loaders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_stand_in_models(tmp_path_factory.mktemp("stand-in-models"), seed=0)


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty model caches, so nothing a previous run downloaded is found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path
