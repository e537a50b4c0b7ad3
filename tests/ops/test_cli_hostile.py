"""Careless hands at the command line (issue 18): one line naming the problem, exit 1 (2 for
usage), no traceback unless --debug, nothing stored lost or half-written."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from db.engine import session_scope
from db.models import Cut
from tests.conftest import EXAMPLE
from tests.foundation.test_cli import anime


def clear(result, code: int = 1) -> str:
    """stderr, after checking the exit code and that no traceback was shown; usage errors come
    in a box, so its borders and line breaks are folded into single spaces."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr if code == 1 else re.sub(r"[\s│╭╮╰╯─]+", " ", result.stderr)


def test_a_database_that_refuses_us_is_one_line(db):
    missing = make_url(db).set(database="no_such_database_here").render_as_string(False)
    refused = "postgresql://postgres:wrong-pass@127.0.0.1:1/anime"
    for url, reason in (
        (missing, 'database "no_such_database_here" does not exist'),
        (refused, "Connection refused"),
    ):
        for args in (("status",), ("db", "current"), ("import", str(EXAMPLE))):
            stderr = clear(anime(*args, db_url=url))
            assert stderr.startswith("error: cannot use the database") and reason in stderr
            assert len(stderr.strip().splitlines()) == 1 and "wrong-pass" not in stderr


@contextlib.contextmanager
def password_role(db: str) -> Iterator[tuple[str, str]]:
    """A role that must give its password (scram-sha-256, by socket and TCP) on the test
    server, which trusts everyone else: a pg_hba.conf line for that role alone, first (the
    first matching line wins), so no other connection changes. Yields (role, password)."""
    admin = make_url(os.environ["ANIME_TEST_ADMIN_URL"]).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    role, password = f"anime_pw_{uuid.uuid4().hex[:8]}", f"right-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        if not os.access(hba, os.W_OK):
            pytest.skip(f"cannot edit the test server's {hba} to ask for a password")
        original = hba.read_text()
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        hba.write_text(
            f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n" + original
        )
        conn.execute("SELECT pg_reload_conf()")
        try:
            yield role, password
        finally:
            hba.write_text(original)
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_wrong_password_is_one_line_that_never_shows_it(db):
    with password_role(db) as (role, password):
        url = make_url(db).set(drivername="postgresql", username=role)
        # The server does ask: the right password is let in, the wrong one is not.
        with psycopg.connect(url.set(password=password).render_as_string(False)):
            pass
        wrong = url.set(password="not-the-pass-w0rd").render_as_string(hide_password=False)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong).close()
        for args in (("status",), ("db", "current")):
            started = time.monotonic()
            result = anime(*args, db_url=wrong)
            stderr = clear(result)
            print(f"\n{' '.join(args)}: {time.monotonic() - started:.1f} s: {stderr.strip()}")
            assert stderr.startswith("error: cannot use the database ") and f"{role}:***@" in stderr
            assert f'password authentication failed for user "{role}"' in stderr
            assert len(stderr.strip().splitlines()) == 1
            assert "not-the-pass-w0rd" not in result.stdout + result.stderr


def test_debug_shows_the_traceback(db):
    result = anime("--debug", "db", "upgrade", "9999_nope", db_url=db)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert "MigrationError" in result.stderr


def test_unknown_revisions_and_below_base(db, fresh_database):
    up = clear(anime("db", "upgrade", "9999_nope", db_url=fresh_database))
    assert "cannot upgrade to '9999_nope'" in up and "0001_production_schema" in up
    empty = clear(anime("db", "downgrade", "-1", "--yes", db_url=fresh_database))
    assert "already at base (empty): nothing to downgrade" in empty
    assert anime("db", "upgrade", "0001_production_schema", db_url=fresh_database).returncode == 0
    below = clear(anime("db", "downgrade", "-5", "--yes", db_url=fresh_database))
    assert "cannot downgrade to '-5'" in below


def test_downgrade_to_base_asks_and_says_what_is_lost(fresh_database):
    assert anime("db", "upgrade", db_url=fresh_database).returncode == 0
    assert anime("import", str(EXAMPLE), db_url=fresh_database).returncode == 0
    declined = clear(anime("db", "downgrade", "base", db_url=fresh_database, input="n\n"))
    assert "drops every table of the studio, with" in declined and "8 cuts" in declined
    assert "nothing changed" in declined
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Cut)) == 8
    done = anime("db", "downgrade", "base", "--yes", db_url=fresh_database)
    assert done.returncode == 0, done.stderr
    assert "schema at base (empty)" in done.stdout


def test_backup_into_a_folder_or_an_unwritable_path(db, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    assert "is a folder: name the file to write" in clear(
        anime("db", "backup", str(folder), db_url=db)
    )
    assert not (tmp_path / "backups.partial").exists() and not list(folder.iterdir())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    stderr = clear(anime("db", "backup", str(blocker / "b.dump"), db_url=db))
    assert f"cannot write the backup to {blocker / 'b.dump'}" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "backups"]


def test_render_refusals_come_before_any_run(db):
    assert anime("import", str(EXAMPLE), db_url=db).returncode == 0
    unknown = clear(anime("render", "no-such-project", "1", db_url=db))
    assert "no project 'no-such-project' (projects: moonlit-courier)" in unknown
    no_episode = clear(anime("render", "moonlit-courier", "99", db_url=db))
    assert "has no episode 99 (episodes: 1" in no_episode
    budget = clear(anime("render", "moonlit-courier", "1", "--budget", "0", db_url=db), code=2)
    assert "'--budget': 0 allows no attempt: at least 1" in budget
    assert "RenderSettings" not in budget
    blender = clear(anime("render", "moonlit-courier", "1", "--renderer", "blender", db_url=db), 2)
    assert "unknown renderer 'blender' (renderers: auto, animatic, comfyui)" in blender
    comfy = clear(anime("render", "moonlit-courier", "1", "--renderer", "comfyui", db_url=db), 2)
    assert "'comfyui' needs a server: --server NAME" in comfy
    order = anime(
        "render", "moonlit-courier", "1", "--phase", "quality", "--until", "generation", db_url=db
    )
    assert "--until generation comes before --phase quality" in clear(order, 2)
    sheet = clear(anime("sheet", "moonlit-courier", "aki", "--renderer", "blender", db_url=db), 2)
    assert "unknown renderer 'blender'" in sheet
