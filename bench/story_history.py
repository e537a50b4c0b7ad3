"""Storyline version control at size: commits, log, diff, merge, export and import.

Builds a story of --chapters x --scenes scenes in a throw-away database, commits --commits edits
alternating between two branches (merging every --merge-every), then times the operations
people run. Prints seconds per operation. Uses DATABASE_URL when set, else an embedded
PostgreSQL in a temporary directory.

    .venv/bin/python bench/story_history.py
    .venv/bin/python bench/story_history.py --commits 1000 --chapters 40
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def _database() -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = os.environ.get("DATABASE_URL")
    if admin is None:
        os.environ["ANIME_DATA_DIR"] = tempfile.mkdtemp(prefix="anime-bench-", dir="/tmp")
        from db.engine import _embedded_server_uri

        admin = _embedded_server_uri()
    url = make_url(admin).set(drivername="postgresql")
    name = f"anime_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    print(f"{label:<44} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--chapters", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--merge-every", type=int, default=25)
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _database()
    from anime import story_edit
    from db import migrate
    from db import story as vc
    from db.engine import session_scope
    from db.models import Project
    from db.production_file import dump_production
    from db.production_io import export_production
    from db.storyline.tree import StoryTree

    migrate.upgrade()
    words = " ".join(f"word{i}" for i in range(120))
    tree = StoryTree.model_validate(
        {
            "chapters": [
                {
                    "slug": f"chapter-{c}",
                    "title": f"Chapter {c}",
                    "scenes": [
                        {"slug": f"scene-{c}-{s}", "title": f"Scene {s}", "text": words}
                        for s in range(args.scenes)
                    ],
                }
                for c in range(args.chapters)
            ]
        }
    )
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope() as session:
        session.add(Project(slug="bench", name="Bench"))
        session.flush()
        story = vc.create_story(
            session, "bench", "epic", "Epic", author="bench", tree=tree, at=clock
        )
        vc.create_branch(session, story, "alt", author="bench")

    def build() -> None:
        nonlocal clock
        for i in range(args.commits):
            branch = "main" if i % 2 else "alt"
            chapter = (i * 7) % args.chapters if branch == "main" else (i * 7 + 1) % args.chapters
            with session_scope() as session:
                story = vc.get_story(session, "bench", "epic")
                head, current = vc.checkout(session, story, branch)
                scene = f"scene-{chapter}-{i % args.scenes}"
                changed = story_edit.set_field(current, scene, "text", f"{words} edit {i}")
                clock += timedelta(minutes=1)
                vc.commit(
                    session,
                    story,
                    changed,
                    branch=branch,
                    parent=head.sha,
                    author="bench",
                    message=f"edit {i}",
                    at=clock,
                )
                if i % args.merge_every == args.merge_every - 1:
                    clock += timedelta(minutes=1)
                    vc.merge(session, story, "alt", "main", author="bench", at=clock)

    timed(f"{args.commits} commits (one transaction each)", build)
    per_commit = None
    with session_scope() as session:
        story = vc.get_story(session, "bench", "epic")
        log = timed("log main, first parents", lambda: vc.history(session, story, "main"))
        full = timed(
            "log main, full", lambda: vc.history(session, story, "main", first_parent=False)
        )
        timed("diff first commit .. main", lambda: vc.diff(session, story, full[-1].sha, "main"))
        per_commit = len(full)
    with session_scope() as session:
        story = vc.get_story(session, "bench", "epic")
        timed(
            "three-way merge alt into main (rolled back)",
            lambda: _merge_rolled_back(session, story, vc),
        )
    with session_scope() as session:
        text = timed(
            "export production (all history)",
            lambda: dump_production(export_production(session, "bench")),
        )
    import yaml

    from db.engine import reset_caches
    from db.production_file import parse_production
    from db.production_io import import_production

    os.environ["DATABASE_URL"] = _database()
    reset_caches()
    migrate.upgrade()

    def load() -> None:
        production = parse_production(yaml.safe_load(text), "bench.yaml")
        with session_scope() as session:
            import_production(session, production)

    timed("import it into an empty database", load)
    timed("import it again (nothing to do)", load)
    print(f"history: {per_commit} commits reachable from main, {len(log)} on its first-parent line")
    print(f"export: {len(text) / 1e6:.1f} MB of YAML")


def _merge_rolled_back(session, story, vc) -> None:
    savepoint = session.begin_nested()
    with contextlib.suppress(vc.MergeConflictError):
        vc.merge(session, story, "alt", "main", author="bench")
    savepoint.rollback()


if __name__ == "__main__":
    main()
