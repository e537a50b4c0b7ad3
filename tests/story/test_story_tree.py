"""Story trees without a database: files, canonical hashes, diffs, three-way merges, edits."""

from __future__ import annotations

import pytest

from anime import story_edit
from anime.story_file import (
    StoryFileError,
    parse_markdown_story,
    parse_yaml_story,
    render_markdown,
    render_yaml,
)
from db.storyline.merge import merge_order, merge_trees
from db.storyline.tree import StoryTree, diff_trees


def test_markdown_and_yaml_round_trip_keep_the_tree_and_its_hash(first_draft):
    tricky = story_edit.set_field(
        first_draft,
        "dispatch",
        "text",
        "# not a heading\n> not a note\n\\ backslash\n\nSecond paragraph.",
    )
    tricky = story_edit.set_field(tricky, "rooftop", "notes", "line one\n\nline three")
    tricky = story_edit.add_chapter(tricky, "untitled")
    for text, parse in (
        (render_markdown(tricky, story="p/s", branch="main", parent="abcd"), parse_markdown_story),
        (render_yaml(tricky, story="p/s", branch="main", parent="abcd"), parse_yaml_story),
    ):
        parsed = parse(text, "story-file")
        assert parsed.tree == tricky
        assert parsed.tree.sha == tricky.sha
        assert (parsed.story, parsed.branch, parsed.parent) == ("p/s", "main", "abcd")


def test_the_hash_ignores_line_endings_and_trailing_spaces_but_not_words(md):
    a = md("# Chapter {#c}\n## Scene {#s}\nHello there.\n")
    b = md("# Chapter {#c}  \r\n## Scene {#s}\r\n\r\nHello there.   \r\n\r\n")
    c = md("# Chapter {#c}\n## Scene {#s}\nHello there!\n")
    assert a.sha == b.sha
    assert a.sha != c.sha


def test_markdown_slugs_come_from_titles_when_not_given(md):
    tree = md("# The Night Delivery\n## Dispatch Office\ntext\n")
    assert tree.chapters[0].slug == "the-night-delivery"
    assert tree.chapters[0].scenes[0].slug == "dispatch-office"


def test_markdown_errors_name_the_file_and_line():
    with pytest.raises(StoryFileError) as err:
        parse_markdown_story("stray text\n# A {#a}\n## B {#b}\nx\n## C {#b}\ny\n", "draft.md")
    message = str(err.value)
    assert "draft.md: line 1: text before the first # chapter" in message
    with pytest.raises(StoryFileError) as err:
        parse_markdown_story("# A {#a}\n## B {#b}\nx\n## C {#b}\ny\n", "draft.md")
    assert "draft.md: line 4 (chapters[0].scenes[1].slug)" in str(err.value)
    assert "'b' is already used by chapters[0].scenes[0]" in str(err.value)


def test_yaml_errors_name_the_path():
    with pytest.raises(StoryFileError) as err:
        parse_yaml_story("chapters:\n  - slug: a\n    scenes:\n      - slug: B!\n", "draft.yaml")
    assert "draft.yaml: chapters[0].scenes[0].slug" in str(err.value)
    with pytest.raises(StoryFileError) as err:
        parse_yaml_story("chapters:\n  - slug: a\n    sceens: []\n", "draft.yaml")
    assert "chapters[0].sceens: unknown field" in str(err.value)


def test_diff_reports_added_removed_changed_and_moved_with_unified_text(first_draft):
    new = story_edit.set_field(first_draft, "dispatch", "text", "Rain. Aki takes a parcel.")
    new = story_edit.remove(new, "across-the-city")
    new = story_edit.add_scene(new, "the-address", "confrontation", "Confrontation", "Words.")
    new = story_edit.move_scene(new, "rooftop", "night-delivery")
    diff = diff_trees(first_draft, new)
    by_slug = {(c.kind, c.slug): c for c in diff.changes}
    assert by_slug["scene", "dispatch"].change == "changed"
    assert by_slug["scene", "dispatch"].field_names == ["text"]
    assert by_slug["scene", "across-the-city"].change == "removed"
    assert by_slug["scene", "confrontation"].change == "added"
    assert by_slug["scene", "rooftop"].field_names == ["chapter"]
    rendered = diff.render()
    assert "--- a/dispatch/text" in rendered
    assert "-Rain on the office windows. Aki takes the sealed envelope." in rendered
    assert "+Rain. Aki takes a parcel." in rendered
    assert diff_trees(new, new).is_empty


def test_diff_notices_reordering(first_draft):
    swapped = story_edit.move_scene(first_draft, "dispatch", "night-delivery")
    diff = diff_trees(first_draft, swapped)
    assert [c.field_names for c in diff.changes] == [["scene order"]]


def test_merge_combines_changes_to_different_fields_and_elements(first_draft):
    ours = story_edit.set_field(first_draft, "dispatch", "text", "Our dispatch.")
    ours = story_edit.add_scene(ours, "the-address", "ours-new", "Ours")
    theirs = story_edit.set_field(first_draft, "dispatch", "notes", "Their note.")
    theirs = story_edit.set_field(theirs, "rooftop", "text", "Their rooftop.")
    theirs = story_edit.add_scene(theirs, "night-delivery", "theirs-new", "Theirs", position=1)
    outcome = merge_trees(first_draft, ours, theirs)
    assert outcome.clean
    merged = outcome.tree
    dispatch = merged.find("dispatch")
    assert (dispatch.text, dispatch.notes) == ("Our dispatch.", "Their note.")
    assert merged.find("rooftop").text == "Their rooftop."
    assert [s.slug for s in merged.chapters[0].scenes] == [
        "theirs-new",
        "dispatch",
        "across-the-city",
    ]
    assert [s.slug for s in merged.chapters[1].scenes] == ["rooftop", "ours-new"]


def test_merge_reports_every_conflict(first_draft):
    ours = story_edit.set_field(first_draft, "dispatch", "text", "Ours.")
    ours = story_edit.remove(ours, "rooftop")
    theirs = story_edit.set_field(first_draft, "dispatch", "text", "Theirs.")
    theirs = story_edit.set_field(theirs, "rooftop", "text", "Changed rooftop.")
    outcome = merge_trees(first_draft, ours, theirs, "main", "alt")
    assert outcome.tree is None
    assert [str(c) for c in outcome.conflicts] == [
        "scene dispatch: text changed differently on main and alt",
        "scene rooftop: changed on alt (text) but removed on main",
    ]


def test_scene_added_to_a_chapter_the_other_side_removed_conflicts(first_draft):
    ours = story_edit.add_scene(first_draft, "the-address", "new-scene")
    theirs = story_edit.remove(first_draft, "the-address")
    outcome = merge_trees(first_draft, ours, theirs)
    assert not outcome.clean
    assert "scene new-scene: belongs in chapter the-address" in str(outcome.conflicts[0])


def test_merge_order_keeps_one_sides_reorder_and_flags_two():
    base = ["a", "b", "c"]
    assert merge_order(base, ["c", "a", "b"], base + ["d"], {"a", "b", "c", "d"}) == [
        "c",
        "a",
        "b",
        "d",
    ]
    assert merge_order(base, ["c", "a", "b"], ["b", "a", "c"], {"a", "b", "c"}) is None


def test_edits_reject_unknown_slugs_and_duplicates(first_draft):
    with pytest.raises(story_edit.StoryEditError, match="no chapter 'nope'"):
        story_edit.add_scene(first_draft, "nope", "x")
    with pytest.raises(story_edit.StoryEditError, match="already used"):
        story_edit.add_scene(first_draft, "the-address", "dispatch")
    assert first_draft.find("x") is None  # the original is never changed
    assert StoryTree().sha != first_draft.sha
