"""Stand-in scoring models built on disk once per session, empty model caches, a cut brief."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from blocks.scoring import ScoringModels
from db.briefs import CutBrief
from tests.scoring.stand_in_models import write_stand_in_models


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


@pytest.fixture
def brief() -> CutBrief:
    """A cut with nobody cast and no style references, for the judge's scoring functions."""
    return CutBrief(
        project_id=1,
        project_slug="test",
        episode_id=1,
        episode_number=1,
        scene_id=1,
        scene_number=1,
        cut_id=1,
        cut_number=1,
    )
