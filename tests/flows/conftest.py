"""Flow tests: the example production in the test database, outputs in a temp folder,
stand-in scoring models built on disk, thresholds saved as real Prefect blocks."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import pytest
from sqlalchemy import func, select

from anime.production import load_production
from blocks.quality import MetricGate, QualityThresholds
from blocks.scoring import ScoringModels
from db.engine import session_scope
from db.models import Job
from db.production_io import import_production
from tests.conftest import EXAMPLE


@pytest.fixture
def production(db, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    return "moonlit-courier"


@pytest.fixture(scope="session")
def stand_in_models(tmp_path_factory) -> ScoringModels:
    from tasks.models import write_stand_in_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_stand_in_models(tmp_path_factory.mktemp("flow-models"), seed=0)


@pytest.fixture
async def save_blocks(prefect_harness, stand_in_models):
    """Save thresholds (and the stand-in models) as blocks; returns a function giving names."""

    async def save(**gates: tuple[float, str] | float) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:8]
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
                "animation": ["motion_smoothness", "temporal_lpips"],
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
