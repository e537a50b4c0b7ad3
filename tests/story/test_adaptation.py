"""Episodes record the story version they adapt; `anime status` says when the story moved on."""

from __future__ import annotations

from typer.testing import CliRunner

from anime import story_edit
from anime.cli import app
from db import story as vc
from db.engine import session_scope
from db.models import Episode, Project


def setup_story(first_draft, clock) -> str:
    with session_scope() as session:
        project = Project(slug="moonlit-courier", name="Moonlit Courier")
        project.episodes.append(Episode(number=1, title="The Night Delivery"))
        project.episodes.append(Episode(number=2, title="Unlinked"))
        session.add(project)
        session.flush()
        story = vc.create_story(
            session, project, "moonlit", "Moonlit", author="mina", tree=first_draft, at=clock()
        )
        episode = project.episodes[0]
        commit = vc.adapt_episode(session, episode, "moonlit@main", ["night-delivery"])
        assert vc.adaptation_status(session, episode).describe() == (
            f"story: adapts moonlit@main {commit.short} (up to date)"
        )
        return story.slug


def change(slug, edit, clock, message):
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", slug)
        head, tree = vc.checkout(session, story, "main")
        vc.commit(
            session, story, edit(tree), parent=head.sha, author="mina", message=message, at=clock()
        )


def drift():
    with session_scope() as session:
        episode = session.query(Episode).filter_by(number=1).one()
        return vc.adaptation_status(session, episode)


def status_output() -> str:
    result = CliRunner().invoke(app, ["status", "moonlit-courier"])
    assert result.exit_code == 0, result.output
    return result.output


def test_story_moved_on_names_the_adapted_scenes_that_changed(db, first_draft, clock):
    slug = setup_story(first_draft, clock)

    # A change outside the adapted chapter: the head moved, but nothing this episode adapts.
    change(slug, lambda t: story_edit.set_field(t, "rooftop", "text", "Later."), clock, "roof")
    state = drift()
    assert not state.moved_on
    assert "the adapted scenes are unchanged" in state.describe()

    # Changes inside it: reported, scene by scene, with what changed.
    change(
        slug,
        lambda t: story_edit.remove(
            story_edit.set_field(t, "dispatch", "text", "Rewritten dispatch."), "across-the-city"
        ),
        clock,
        "rewrite",
    )
    change(
        slug,
        lambda t: story_edit.add_scene(t, "night-delivery", "stairwell", "Stairwell"),
        clock,
        "new scene",
    )
    state = drift()
    assert state.moved_on
    assert state.changed_scenes() == [
        "dispatch (text)",
        "stairwell (added)",
        "across-the-city (removed)",
    ]
    out = status_output()
    assert "story moved on: moonlit@main is at" in out
    assert "changed: dispatch (text), stairwell (added), across-the-city (removed)" in out
    assert "story" not in out.split("episode 2")[1]  # it adapts nothing and says nothing


def test_adapting_checks_the_scenes_and_deleting_the_story_unlinks(db, first_draft, clock):
    import pytest

    slug = setup_story(first_draft, clock)
    with session_scope() as session:
        episode = session.query(Episode).filter_by(number=2).one()
        with pytest.raises(vc.StoryError, match="has no scene or chapter nowhere"):
            vc.adapt_episode(session, episode, f"{slug}@main", ["nowhere"])
        with pytest.raises(vc.StoryError, match="no story 'other'"):
            vc.adapt_episode(session, episode, "other@main")
    with session_scope() as session:
        session.delete(vc.get_story(session, "moonlit-courier", slug))
    with session_scope() as session:
        episode = session.query(Episode).filter_by(number=1).one()
        assert episode.story_commit_id is None  # ON DELETE SET NULL: the episode stays
    assert "story" not in status_output().split("episode 1")[1]


def test_adapt_command_links_an_old_commit(db, first_draft, clock):
    slug = setup_story(first_draft, clock)
    change(slug, lambda t: story_edit.set_field(t, "dispatch", "notes", "N."), clock, "notes")
    result = CliRunner().invoke(
        app, ["story", "adapt", "moonlit-courier", "1", f"{slug}@main~1", "--scene", "dispatch"]
    )
    assert result.exit_code == 0, result.output
    assert "story moved on" in result.output and "dispatch (notes)" in result.output
