"""Flow tests: the example production in the test database, outputs in a temp folder,
stand-in scoring models built on disk, thresholds saved as real Prefect blocks."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest
from sqlalchemy import func, select

from blocks.quality import MetricGate, QualityThresholds
from blocks.scoring import ScoringModels
from db.engine import session_scope
from db.models import Cut, Job
from db.production_file import load_production
from db.production_io import import_production
from tests.conftest import EXAMPLE


@pytest.fixture
def production(db, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
        # Small frames: the stand-in LPIPS backbone costs what the real one does on CPU.
        for cut in s.scalars(select(Cut)):
            cut.overrides = {**cut.overrides, "width": 256, "height": 144}
    return "moonlit-courier"


SMALL = {
    "project": {"slug": "pocket-short", "name": "Pocket Short"},
    "story_bible": {"style_prompt": "clean line art", "palette": ["#203040", "#a0b0c0"]},
    "characters": [{"slug": "mio", "name": "Mio", "base_prompt": "1girl, red scarf"}],
    "episodes": [
        {
            "number": 1,
            "title": "Three Cuts",
            "scenes": [
                {
                    "number": 1,
                    "cuts": [
                        {
                            "number": n,
                            "description": f"cut {n}",
                            "frames": 8,
                            "fps": 8,
                            "camera": {"shot": "wide", "movement": "pan-left"},
                            "overrides": {"width": 192, "height": 108},
                        }
                        for n in (1, 2, 3)
                    ],
                }
            ],
        }
    ],
}


@pytest.fixture
def small_production(db, tmp_path, monkeypatch) -> str:
    """Three cuts in one scene: for the flow behaviours that need no bigger episode."""
    from db.production_file import parse_production

    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    with session_scope() as s:
        import_production(s, parse_production(SMALL, "small.yaml", base_dir=tmp_path))
    return "pocket-short"


@pytest.fixture(scope="session")
def stand_in_models(tmp_path_factory) -> ScoringModels:
    from tests.scoring.stand_in_models import write_stand_in_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_stand_in_models(tmp_path_factory.mktemp("flow-models"), seed=0)


@pytest.fixture
async def save_blocks(prefect_harness, stand_in_models):
    """Save thresholds (and the stand-in models) as blocks; returns a function giving names."""

    async def save(**gates: tuple[float, str] | float) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:8]
        animation = (
            ["motion_smoothness", "temporal_lpips"]
            if "temporal_lpips" in gates
            else ["motion_smoothness"]
        )
        thresholds = QualityThresholds(
            gates={
                name: MetricGate(threshold=v[0], comparator=v[1])
                if isinstance(v, tuple)
                else MetricGate(threshold=v)
                for name, v in gates.items()
            },
            required_metrics={
                "concept": ["sheet_consistency"],
                "generation": ["aesthetic"],
                "animation": animation,
                "quality": [],
            },
        )
        await thresholds.save(f"thresholds-{suffix}", overwrite=True)
        await stand_in_models.save(f"models-{suffix}", overwrite=True)
        return f"thresholds-{suffix}", f"models-{suffix}"

    return save


def count_jobs(**where) -> int:
    with session_scope() as s:
        query = select(func.count()).select_from(Job)
        for name, value in where.items():
            query = query.where(getattr(Job, name) == value)
        return s.scalar(query)


def artifacts_exist(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
