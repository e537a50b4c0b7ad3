"""`anime import` holds the production's own reference images to its gates, through the same
check as `anime calibrate`: one warning per image the aesthetic gate would reject (the import
still succeeds), only images not scored before are scored, and where the models are not
installed the import prints what it always did and loads no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from anime.cli import app
from blocks.quality import MetricGate, QualityThresholds
from db.briefs import production_references
from db.engine import session_scope
from db.models import Project
from db.production_file import load_production
from db.production_io import import_production
from tasks.scoring.aesthetic import aesthetic_batch
from tasks.scoring.reference_gates import check_references
from tests.conftest import EXAMPLE, REPO
from tests.scoring.stand_in_models import write_stand_in_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """The tiny stand-in CLIP and aesthetic head, loaded by the real loaders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_stand_in_models(tmp_path_factory.mktemp("reference-check-models"))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model folder and score cache: nothing installed, nothing remembered."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _import(file: Path) -> list[tuple[str, str]]:
    with session_scope() as session:
        report = import_production(session, load_production(file))
        project_id = session.scalar(select(Project.id).where(Project.slug == report.project))
        return production_references(session, project_id)


def _median_gate(references, models) -> tuple[QualityThresholds, list[float]]:
    """The generation aesthetic gate at the median stand-in score: some fail, some pass."""
    scores = [r.value for r in aesthetic_batch([p for _, p in references], models)]
    gate = MetricGate(threshold=float(np.median(scores)))
    return QualityThresholds(phase_gates={"generation": {"aesthetic": gate}}), scores


def test_import_warns_about_references_the_aesthetic_gate_would_reject(
    db, prefect_harness, models, cache_home
) -> None:
    references = _import(EXAMPLE)
    thresholds, scores = _median_gate(references, models)
    suffix = uuid.uuid4().hex[:8]
    thresholds.save(f"import-refs-{suffix}", overwrite=True)
    models.save(f"import-refs-models-{suffix}", overwrite=True)
    blocks = ["--thresholds-block", f"import-refs-{suffix}",
              "--scoring-block", f"import-refs-models-{suffix}"]  # fmt: skip

    result = CliRunner().invoke(app, ["import", str(EXAMPLE), *blocks])
    assert result.exit_code == 0, result.output
    assert "moonlit-courier: already up to date" in result.output  # warnings, not a failure
    warned = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    threshold = thresholds.phase_gates["generation"]["aesthetic"].threshold
    failing = [(ref, s) for ref, s in zip(references, scores, strict=True) if s < threshold]
    assert failing and len(failing) < len(references)
    assert len(warned) == len(failing)
    for ((kind, path), score), line in zip(failing, warned, strict=True):
        assert f"{kind} {path}: aesthetic {score:.2f} fails the generation gate" in line
        assert f">= {threshold:g}" in line
    assert (
        f"{len(failing)} reference image(s) below the generation aesthetic gate" in result.output
    )
    assert "--no-check-references skips this check" in result.output

    quiet = CliRunner().invoke(app, ["import", str(EXAMPLE), *blocks, "--no-check-references"])
    assert quiet.exit_code == 0, quiet.output
    assert "warning:" not in quiet.output


def test_only_new_or_changed_reference_images_are_scored(db, models, cache_home, tmp_path):
    folder = shutil.copytree(EXAMPLE.parent, tmp_path / "production")
    references = _import(folder / EXAMPLE.name)
    thresholds, _ = _median_gate(references, models)

    first = check_references(references, thresholds, models)
    assert first.scored == len(references) and first.rejected
    again = check_references(references, thresholds, models)
    assert again.scored == 0  # every image remembered: no model is even loaded
    assert again.rejected == first.rejected

    changed = folder / "refs" / "aki-profile.png"
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(90).save(changed)
    after = check_references(references, thresholds, models)
    assert after.scored == 1
    # Another model setup (here: a replaced aesthetic head) scores everything again.
    head = Path(models.aesthetic_head)
    other = models.model_copy(update={"aesthetic_head": str(tmp_path / "head-copy.pth")})
    shutil.copyfile(head, other.aesthetic_head)
    assert check_references(references, thresholds, other).scored == len(references)


def test_an_import_without_the_models_prints_what_it_always_did(db, cache_home) -> None:
    """No aesthetic model where the default block looks: no note, and neither torch nor
    Prefect is imported (the check is one file lookup)."""
    _import(EXAMPLE)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from anime.cli import app\n"
        "result = CliRunner().invoke(app, sys.argv[1:])\n"
        "print(result.output, end='')\n"
        "loaded = [m for m in ('torch', 'prefect') if m in sys.modules]\n"
        "print('exit', result.exit_code, 'loaded:', loaded)\n"
    )

    def anime_import(*options: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, "import", str(EXAMPLE), *options],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    checked = anime_import()
    assert checked.endswith("exit 0 loaded: []\n"), checked  # no torch, no Prefect
    assert checked == anime_import("--no-check-references")
    assert "note:" not in checked and "warning:" not in checked
