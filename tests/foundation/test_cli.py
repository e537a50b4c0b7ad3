"""The `anime` command as people use it, run as a real subprocess against the test database."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import func, select

from db.engine import session_scope
from db.models import Cut, Project
from tests.conftest import EXAMPLE, REPO


def anime(
    *args: str, db_url: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "anime", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        input=input,
        timeout=120,
    )


def test_import_status_export(db, tmp_path):
    first = anime("import", str(EXAMPLE), db_url=db)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "8 cut" in first.stdout
    again = anime("import", str(EXAMPLE), db_url=db)
    assert "nothing changed" in again.stdout

    status = anime("status", "moonlit-courier", db_url=db)
    assert status.returncode == 0, status.stderr
    assert "episode 1: The Night Delivery - 3 scenes, 8 cuts" in status.stdout

    out = tmp_path / "export.yaml"
    exported = anime("export", "moonlit-courier", "-o", str(out), db_url=db)
    assert exported.returncode == 0, exported.stderr
    assert "slug: moonlit-courier" in out.read_text()
    # Written outside the production's folder: its images are named absolutely (issue 18).
    assert "image path(s) lie outside the export's folder" in exported.stderr
    assert "needs ANIME_MEDIA_ROOT" in exported.stderr
    covered = anime("export", "moonlit-courier", "-o", str(out), db_url=db,
                    env={"ANIME_MEDIA_ROOT": str(EXAMPLE.parent)})  # fmt: skip
    assert covered.returncode == 0 and "ANIME_MEDIA_ROOT" not in covered.stderr


def test_bad_file_exits_1_with_a_clear_message_and_no_traceback(db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: {slug: x, name: X}\nepisodes: [{number: 0, title: T}]\n")
    result = anime("import", str(bad), db_url=db)
    assert result.returncode == 1
    assert f"{bad}: episodes[0].number: Input should be greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0


def test_unknown_project_and_missing_file(db, tmp_path):
    result = anime("status", "nope", db_url=db)
    assert result.returncode == 1 and "no project 'nope'" in result.stderr
    result = anime("import", str(tmp_path / "missing.yaml"), db_url=db)
    assert result.returncode == 1 and "file not found" in result.stderr


def test_commands_refuse_an_unmigrated_database(fresh_database):
    result = anime("status", db_url=fresh_database)
    assert result.returncode == 1
    assert "run `anime db upgrade`" in result.stderr
    up = anime("db", "upgrade", db_url=fresh_database)
    assert up.returncode == 0, up.stderr
    current = anime("db", "current", db_url=fresh_database)
    assert "up to date" in current.stdout


def test_password_never_printed(db):
    from sqlalchemy.engine import make_url

    url = make_url(db).set(password="s3cret-pass-word")
    result = anime("db", "current", db_url=url.render_as_string(hide_password=False))
    assert "s3cret-pass-word" not in result.stdout + result.stderr


def test_backup_then_restore_gives_the_same_rows(db, tmp_path):
    from tests.foundation.test_import import snapshot

    assert anime("import", str(EXAMPLE), db_url=db).returncode == 0
    before = snapshot()
    dump = tmp_path / "backup.dump"
    result = anime("db", "backup", str(dump), db_url=db)
    assert result.returncode == 0, result.stderr
    assert dump.stat().st_size > 0

    with session_scope() as s:  # damage: drop the project and everything under it
        s.delete(s.scalar(select(Project)))
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Cut)) == 0

    result = anime("db", "restore", str(dump), "--yes", db_url=db)
    assert result.returncode == 0, result.stderr
    from db.engine import reset_caches

    reset_caches()
    assert snapshot() == before


def test_restore_of_a_missing_file_is_refused(db, tmp_path):
    result = anime("db", "restore", str(tmp_path / "nope.dump"), "--yes", db_url=db)
    assert result.returncode == 1 and "backup file not found" in result.stderr
