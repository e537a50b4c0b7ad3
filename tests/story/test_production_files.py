"""Stories in production files: export writes all history, import recreates the same ids."""

from __future__ import annotations

import pytest
import yaml

from anime import story_edit
from db import story as vc
from db.engine import session_scope
from db.models import Episode
from db.production_file import ProductionFileError, dump_production, parse_production
from db.production_io import export_production, import_production
from db.story_io import episode_story_fields

PRODUCTION = {
    "project": {"slug": "moonlit-courier", "name": "Moonlit Courier"},
    "episodes": [
        {"number": 1, "title": "The Night Delivery"},
        {"number": 2, "title": "The Second Letter"},
    ],
}


def _episode(session, number):
    return session.query(Episode).filter_by(number=number).one()


def build_history(first_draft, clock) -> None:
    """main: draft -> edit -> merge(alt); alt: draft -> edit; episode 1 adapts the draft."""
    with session_scope() as session:
        import_production(session, parse_production(PRODUCTION))
        story = vc.create_story(
            session,
            "moonlit-courier",
            "moonlit",
            "Moonlit",
            author="mina",
            tree=first_draft,
            at=clock(),
        )
        draft = vc.resolve(session, story, "main")
        vc.create_branch(session, story, "alt-ending", author="ren")
        main_tree = story_edit.set_field(first_draft, "dispatch", "text", "Main dispatch.")
        vc.commit(
            session, story, main_tree, parent=draft.sha, author="mina", message="m", at=clock()
        )
        alt_tree = story_edit.add_scene(first_draft, "the-address", "betrayal", "Betrayal")
        vc.commit(
            session,
            story,
            alt_tree,
            branch="alt-ending",
            parent=draft.sha,
            author="ren",
            message="alt",
            at=clock(),
        )
        vc.merge(session, story, "alt-ending", "main", author="mina", at=clock())
        vc.create_branch(session, story, "side", draft.sha, author="ren")
        # A merge that keeps the other side's tree as is: its tree is exported once, by id.
        vc.create_branch(session, story, "polish", author="ren")
        head, tree = vc.checkout(session, story, "polish")
        polished = story_edit.set_field(tree, "rooftop", "notes", "Polished.")
        vc.commit(
            session,
            story,
            polished,
            branch="polish",
            parent=head.sha,
            author="ren",
            message="polish",
            at=clock(),
        )
        vc.merge(session, story, "polish", "main", author="mina", at=clock(), fast_forward=False)
        vc.adapt_episode(
            session,
            _episode(session, 1),
            f"moonlit@{draft.sha[:8]}",
            ["dispatch", "the-address"],
            branch="main",
        )


def snapshot_state() -> dict:
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", "moonlit")
        graph = vc.load_graph(session, story)
        episode = _episode(session, 1)
        return {
            "commits": graph.parents,
            "heads": {b.name: b.head.sha for b in vc.list_branches(session, story)},
            "episode": episode_story_fields(session, episode),
            "drift": vc.adaptation_status(session, episode).describe(),
        }


def export_text() -> str:
    with session_scope() as session:
        return dump_production(export_production(session, "moonlit-courier"))


def import_text(text: str, prune: bool = False):
    production = parse_production(yaml.safe_load(text), "exported.yaml")
    with session_scope() as session:
        return import_production(session, production, prune=prune)


def test_export_then_import_into_an_empty_database_keeps_ids_and_heads(
    db, first_draft, clock, emptied
):
    build_history(first_draft, clock)
    before = snapshot_state()
    text = export_text()
    assert len(before["commits"]) == 6
    assert text.count("    tree:\n") == 1 and text.count("    tree_changes:\n") == 5

    emptied()
    report = import_text(text)
    assert report.created["story commit"] == 6
    assert report.created["story branch"] == 4
    assert snapshot_state() == before
    assert "story moved on" in before["drift"] and "dispatch (text)" in before["drift"]
    assert "betrayal (added)" in before["drift"]

    # Import again: nothing changes, and the export is the same text.
    again = import_text(text)
    assert not again.changed, again.summary()
    assert export_text() == text


def test_reimport_keeps_a_branch_that_moved_on_and_rejects_one_that_diverged(
    db, first_draft, clock
):
    build_history(first_draft, clock)
    old_file = export_text()
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", "moonlit")
        head, tree = vc.checkout(session, story, "main")
        newer = vc.commit(
            session,
            story,
            story_edit.remove(tree, "rooftop"),
            parent=head.sha,
            author="mina",
            message="later",
            at=clock(),
        ).sha
    report = import_text(old_file)
    assert not report.changed
    assert snapshot_state()["heads"]["main"] == newer  # not rewound to the file's head

    # The file's main goes another way than the database's: refused, nothing stored.
    data = yaml.safe_load(old_file)
    commits = data["stories"][0]["commits"]
    main_head = next(b["head"] for b in data["stories"][0]["branches"] if b["name"] == "main")
    commits.append(
        {
            "parents": [main_head],
            "author": "ren",
            "message": "elsewhere",
            "committed_at": "2026-11-21T08:00:00+00:00",
            "tree": commits[0]["tree"],
        }
    )
    production = parse_production(data, "diverged.yaml")
    from db.storyline.spec import resolve_story

    other = resolve_story(production.stories[0], "stories[0]").commits[-1].sha
    for branch in data["stories"][0]["branches"]:
        if branch["name"] == "main":
            branch["head"] = other
    before = snapshot_state()
    with pytest.raises(ProductionFileError) as err, session_scope() as session:
        import_production(session, parse_production(data, "diverged.yaml"))
    message = str(err.value)
    assert "stories[0].branches[" in message and "went different ways" in message
    assert snapshot_state() == before


def test_a_commit_edited_after_the_fact_is_refused_with_its_path(db, first_draft, clock):
    build_history(first_draft, clock)
    data = yaml.safe_load(export_text())
    data["stories"][0]["commits"][1]["message"] = "rewritten history"
    with pytest.raises(ProductionFileError) as err:
        parse_production(data, "tampered.yaml")
    assert "tampered.yaml: stories[0].commits[1].id: " in str(err.value)
    assert "does not match the commit's content" in str(err.value)

    data = yaml.safe_load(export_text())
    data["stories"][0]["commits"][1]["tree_changes"]["chapter_order"].append("nope")
    with pytest.raises(ProductionFileError) as err:
        parse_production(data, "tampered.yaml")
    assert (
        "tampered.yaml: stories[0].commits[1].tree_changes: chapter 'nope' is neither in the "
        "parent's tree nor in chapters"
    ) in str(err.value)


def test_episode_story_links_are_checked_against_the_file(db):
    data = {
        **PRODUCTION,
        "stories": [
            {
                "slug": "moonlit",
                "title": "Moonlit",
                "commits": [
                    {
                        "author": "mina",
                        "committed_at": "2026-11-20T09:00:00+00:00",
                        "tree": {"chapters": [{"slug": "one", "scenes": [{"slug": "a"}]}]},
                    }
                ],
                "branches": [{"name": "main", "head": "0" * 7}],
            }
        ],
        "episodes": [
            {"number": 1, "title": "E1", "story_commit": "moonlit@nope"},
            {"number": 2, "title": "E2", "story_commit": "moonlit@main", "story_scenes": ["zz"]},
        ],
    }
    with pytest.raises(ProductionFileError) as err:
        parse_production(data, "links.yaml")
    message = str(err.value)
    assert "links.yaml: stories[0].branches[0].head: no commit 0000000 earlier in the list" in (
        message
    )
    # Fix the head: the episode links are checked next.
    from db.storyline.spec import StorySpec, resolve_story

    spec = StorySpec.model_validate(data["stories"][0])
    data["stories"][0]["branches"][0]["head"] = resolve_story(spec, "s").commits[0].sha
    with pytest.raises(ProductionFileError) as err:
        parse_production(data, "links.yaml")
    message = str(err.value)
    assert "episodes[0].story_commit: story moonlit has no branch or commit 'nope'" in message
    assert "episodes[1].story_scenes[0]: story moonlit at" in message

    data["episodes"][0]["story_commit"] = "moonlit@main"
    data["episodes"][1]["story_scenes"] = ["one"]
    with session_scope() as session:
        import_production(session, parse_production(data, "links.yaml"))
    with session_scope() as session:
        drift = vc.adaptation_status(session, _episode(session, 2))
        assert drift.describe().startswith("story: adapts moonlit@main")
        assert drift.scenes == ["one"]
