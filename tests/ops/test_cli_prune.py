"""`anime import --prune` (issue 18): it says what it removes, asks before removing render
history (nothing changes when refused), and removes the output files the studio stored."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import yaml
from sqlalchemy import func, select

from db import jobs as db_jobs
from db.engine import session_scope
from db.models import Artifact, Cut, Episode, Job, JobKind, Phase, Project, Scene
from tests.conftest import EXAMPLE, REPO


def anime(*args: str, db_url: str, env: dict, input: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "anime", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": db_url, **env},
        cwd=REPO,
        input=input,
        timeout=120,
    )


def _last_cut_rendered(output: str) -> int:
    """A keyframe job with one artifact (``output`` on disk) for episode 1's last cut."""
    with session_scope() as s:
        project = s.scalar(select(Project))
        cut = s.scalar(
            select(Cut).join(Scene).join(Episode).order_by(Scene.number.desc(), Cut.number.desc())
        )
        job, _ = db_jobs.get_or_create_job(
            s, project_id=project.id, phase=Phase.GENERATION, kind=JobKind.KEYFRAME,
            attempt=1, cut_id=cut.id, renderer="animatic",
        )  # fmt: skip
        s.add(Artifact(job_id=job.id, uri=output, sha256="0" * 64, mime="image/png", size_bytes=3))
        return cut.id


def test_prune_reports_asks_and_removes_the_output_files(db, tmp_path):
    artifacts = tmp_path / "artifacts"
    env = {"ANIME_ARTIFACTS_DIR": str(artifacts)}
    folder = shutil.copytree(EXAMPLE.parent, tmp_path / "moonlit")
    production = folder / "production.yaml"
    assert anime("import", str(production), db_url=db, env=env).returncode == 0
    output = artifacts / "moonlit-courier" / "cut.png"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"png")
    _last_cut_rendered(str(output))

    data = yaml.safe_load(production.read_text())
    scenes = data["episodes"][0]["scenes"]
    scenes[-1]["cuts"].pop()
    production.write_text(yaml.safe_dump(data, sort_keys=False))

    refused = anime("import", str(production), "--prune", db_url=db, env=env, input="n\n")
    assert refused.returncode == 1, refused.stderr
    assert "removed 1 cut" in refused.stderr
    assert "render history removed with them: 1 artifacts, 1 jobs; 1 output file(s)" in (
        refused.stderr
    )
    assert "nothing changed" in refused.stderr
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert s.scalar(select(func.count()).select_from(Cut)) == 8
    assert output.is_file()

    done = anime("import", str(production), "--prune", "--yes", db_url=db, env=env)
    assert done.returncode == 0, done.stderr
    assert "removed 1 cut" in done.stdout and "1 artifacts, 1 jobs" in done.stdout
    assert f"removed 1 output file(s) under {artifacts.resolve()}" in done.stdout
    assert not output.exists()
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(Cut)) == 7


def test_prune_without_render_history_does_not_ask(db, tmp_path):
    folder = shutil.copytree(EXAMPLE.parent, tmp_path / "moonlit")
    production = folder / "production.yaml"
    env = {"ANIME_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    assert anime("import", str(production), db_url=db, env=env).returncode == 0
    data = yaml.safe_load(production.read_text())
    data["episodes"][0]["scenes"][-1]["cuts"].pop()
    production.write_text(yaml.safe_dump(data, sort_keys=False))
    done = anime("import", str(production), "--prune", db_url=db, env=env, input="")
    assert done.returncode == 0, done.stderr
    assert "removed 1 cut" in done.stdout and "no render history removed" in done.stdout
