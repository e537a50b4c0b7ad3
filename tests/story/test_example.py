"""The example production carries a versioned storyline and round-trips through export."""

from __future__ import annotations

import yaml

from db import story as vc
from db.engine import session_scope
from db.production_file import dump_production, load_production, parse_production
from db.production_io import export_production, import_production
from db.queries import get_project, project_status


def test_example_story_imports_with_history_and_episode_1_sees_it_moved_on(
    db, emptied, example_path
):
    production = load_production(example_path)
    with session_scope() as session:
        report = import_production(session, production)
    assert report.created["story commit"] == 3 and report.created["story branch"] == 2
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", "moonlit-courier")
        heads = {b.name: b.head.sha for b in vc.list_branches(session, story)}
        first = vc.history(session, story, "main")[-1]
        assert heads["main"].startswith("e93b0367a96a")
        assert heads["ren-pov"].startswith("5182c8bb8d6f")
        assert vc.merge_base(session, story, "main", "ren-pov").sha == first.sha
        status = project_status(session, get_project(session, "moonlit-courier"))
        drift = status.episodes[0].story
        assert drift.moved_on and drift.changed_scenes() == ["dispatch (text)"]
        text = dump_production(export_production(session, "moonlit-courier"))

    emptied()
    with session_scope() as session:
        import_production(session, parse_production(yaml.safe_load(text), "exported.yaml"))
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", "moonlit-courier")
        assert {b.name: b.head.sha for b in vc.list_branches(session, story)} == heads
