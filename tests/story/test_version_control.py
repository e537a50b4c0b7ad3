"""Stories under version control on real PostgreSQL: commit, branch, diverge, diff, merge."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from anime import story_edit
from db import story as vc
from db.models import BranchMoveKind, StoryCommit, StorySnapshot
from db.storyline.tree import commit_sha


@pytest.fixture
def story(session, project, first_draft, clock):
    return vc.create_story(
        session, project, "moonlit", "Moonlit", author="mina", tree=first_draft, at=clock()
    )


def edit(session, story, branch, change, clock, message, author="mina"):
    """Check out a branch head, change its tree, commit with that head as the expected parent."""
    head, tree = vc.checkout(session, story, branch)
    return vc.commit(
        session,
        story,
        change(tree),
        branch=branch,
        parent=head.sha,
        author=author,
        message=message,
        at=clock(),
    )


def heads(session, story):
    return {b.name: b.head.sha for b in vc.list_branches(session, story)}


def commit_count(session, story):
    return session.scalar(
        select(func.count()).select_from(StoryCommit).where(StoryCommit.story_id == story.id)
    )


def test_a_commit_id_is_the_hash_of_its_content(session, story):
    first = vc.resolve(session, story, "main")
    assert first.sha == commit_sha(
        vc.tree_of(first).sha, [], "mina", "Start the story", first.committed_at
    )
    assert vc.resolve(session, story, first.sha[:6]).id == first.id


def test_commit_needs_the_current_head_as_parent(session, story, clock):
    base = vc.resolve(session, story, "main")
    edit(
        session,
        story,
        "main",
        lambda t: story_edit.set_field(t, "dispatch", "text", "A."),
        clock,
        "a",
    )
    moved = heads(session, story)
    with pytest.raises(vc.StaleHeadError) as err:
        vc.commit(
            session,
            story,
            story_edit.set_field(vc.tree_of(base), "dispatch", "text", "B."),
            parent=base.sha,
            author="ren",
            message="my edit",
            at=clock(),
        )
    assert f"your edit is based on {base.sha[:10]}" in str(err.value)
    assert "Nothing was committed" in str(err.value)
    assert heads(session, story) == moved
    assert commit_count(session, story) == 2
    with pytest.raises(vc.StoryError, match="a branch name would always match"):
        vc.commit(session, story, vc.tree_of(base), parent="main", author="m", message="x")
    with pytest.raises(vc.StoryError, match="nothing to commit"):
        head, tree = vc.checkout(session, story, "main")
        vc.commit(session, story, tree, parent=head.sha, author="m", message="same", at=clock())


def test_branch_diverge_diff_and_history(session, story, clock):
    root = vc.resolve(session, story, "main")
    vc.create_branch(session, story, "alt-ending", "main", author="ren")
    a1 = edit(
        session,
        story,
        "main",
        lambda t: story_edit.set_field(t, "dispatch", "text", "Main dispatch."),
        clock,
        "main: dispatch",
    )
    b1 = edit(
        session,
        story,
        "alt-ending",
        lambda t: story_edit.add_scene(t, "the-address", "betrayal", "Betrayal", "Ren lies."),
        clock,
        "alt: betrayal",
    )
    a2 = edit(
        session,
        story,
        "main",
        lambda t: story_edit.remove(t, "across-the-city"),
        clock,
        "main: cut the run",
    )
    assert heads(session, story) == {"main": a2.sha, "alt-ending": b1.sha}
    assert [c.sha for c in vc.history(session, story, "main")] == [a2.sha, a1.sha, root.sha]
    assert [c.sha for c in vc.history(session, story, "alt-ending")] == [b1.sha, root.sha]

    diff = vc.diff(session, story, "main", "alt-ending")
    changes = {(c.slug, c.change) for c in diff.changes}
    assert changes == {
        ("dispatch", "changed"),
        ("across-the-city", "added"),
        ("betrayal", "added"),
    }
    assert "+Ren lies." in diff.render()

    # Checkout of an old commit gives the tree as it was then.
    old = vc.checkout(session, story, "main~2")[1]
    assert old.find("across-the-city") is not None
    assert old.find("dispatch").text.startswith("Rain on the office windows")


def test_clean_merge_combines_both_lines_and_records_both_parents(session, story, clock):
    vc.create_branch(session, story, "alt-ending", author="ren")
    a1 = edit(
        session,
        story,
        "main",
        lambda t: story_edit.set_field(t, "dispatch", "text", "Main dispatch."),
        clock,
        "main edit",
    )
    b1 = edit(
        session,
        story,
        "alt-ending",
        lambda t: story_edit.set_field(t, "rooftop", "text", "Alt rooftop."),
        clock,
        "alt edit",
    )
    result = vc.merge(session, story, "alt-ending", "main", author="mina", at=clock())
    assert result.kind == "merge"
    assert result.base.sha == vc.history(session, story, "main")[-1].sha
    merged = result.head
    assert [p.sha for p in merged.parents] == [a1.sha, b1.sha]
    tree = vc.tree_of(merged)
    assert tree.find("dispatch").text == "Main dispatch."
    assert tree.find("rooftop").text == "Alt rooftop."
    assert heads(session, story)["main"] == merged.sha
    assert heads(session, story)["alt-ending"] == b1.sha

    # First-parent history stays on main's line; the full log shows the merged-in commit too,
    # always before its parents.
    assert [c.sha for c in vc.history(session, story, "main")][:2] == [merged.sha, a1.sha]
    full = [c.sha for c in vc.history(session, story, "main", first_parent=False)]
    assert full[0] == merged.sha and set(full[1:3]) == {a1.sha, b1.sha}
    assert full[-1] == result.base.sha
    assert len(full) == 4

    # Merging again changes nothing.
    again = vc.merge(session, story, "alt-ending", "main", author="mina", at=clock())
    assert again.kind == "up-to-date" and again.head.sha == merged.sha


def test_conflicting_merge_is_rejected_and_writes_nothing(session, story, clock):
    vc.create_branch(session, story, "alt-ending", author="ren")
    edit(
        session,
        story,
        "main",
        lambda t: story_edit.set_field(t, "rooftop", "text", "Main rooftop."),
        clock,
        "main",
    )
    edit(
        session,
        story,
        "alt-ending",
        lambda t: story_edit.set_field(t, "rooftop", "text", "Alt rooftop."),
        clock,
        "alt",
    )
    edit(
        session,
        story,
        "alt-ending",
        lambda t: story_edit.set_field(t, "dispatch", "text", "Alt dispatch."),
        clock,
        "alt 2",
    )
    edit(session, story, "main", lambda t: story_edit.remove(t, "dispatch"), clock, "main 2")
    before_heads = heads(session, story)
    before_commits = commit_count(session, story)
    before_snapshots = session.scalar(select(func.count()).select_from(StorySnapshot))
    before_moves = len(vc.branch_moves(session, story, "main"))

    with pytest.raises(vc.MergeConflictError) as err:
        vc.merge(session, story, "alt-ending", "main", author="mina", at=clock())
    assert [str(c) for c in err.value.conflicts] == [
        "scene dispatch: changed on alt-ending (text) but removed on main",
        "scene rooftop: text changed differently on main and alt-ending",
    ]
    assert "nothing was written" in str(err.value)

    session.expire_all()
    assert heads(session, story) == before_heads
    assert commit_count(session, story) == before_commits
    assert session.scalar(select(func.count()).select_from(StorySnapshot)) == before_snapshots
    assert len(vc.branch_moves(session, story, "main")) == before_moves


def test_fast_forward_is_recorded_as_one(session, story, clock):
    vc.create_branch(session, story, "polish", author="ren")
    polished = edit(
        session,
        story,
        "polish",
        lambda t: story_edit.set_field(t, "dispatch", "notes", "Tighter."),
        clock,
        "polish",
    )
    result = vc.merge(session, story, "polish", "main", author="mina")
    assert result.kind == "fast-forward"
    assert heads(session, story)["main"] == polished.sha
    last = vc.branch_moves(session, story, "main")[0]
    assert last.kind == BranchMoveKind.FAST_FORWARD
    assert last.to_commit.sha == polished.sha and last.author == "mina"

    # --no-ff: a merge commit even when a fast-forward would do.
    vc.create_branch(session, story, "more", author="ren")
    edit(session, story, "more", lambda t: story_edit.add_chapter(t, "epilogue"), clock, "more")
    no_ff = vc.merge(session, story, "more", "main", author="mina", fast_forward=False, at=clock())
    assert no_ff.kind == "merge" and len(no_ff.head.parents) == 2


def test_branch_names_refs_and_deletion(session, story, clock):
    with pytest.raises(vc.StoryError, match="not allowed"):
        vc.create_branch(session, story, "bad name", author="m")
    with pytest.raises(vc.StoryError, match="already has a branch 'main'"):
        vc.create_branch(session, story, "main", author="m")
    with pytest.raises(vc.StoryError, match="no branch or commit 'nope'"):
        vc.resolve(session, story, "nope")
    vc.create_branch(session, story, "tmp", author="m")
    with pytest.raises(vc.StoryError, match="default branch"):
        vc.delete_branch(session, story, "main")
    head = vc.delete_branch(session, story, "tmp")
    assert set(heads(session, story)) == {"main"}
    assert vc.resolve(session, story, head.sha).id == head.id  # the commit stays


def test_two_people_committing_at_once_cannot_overwrite_each_other(db, first_draft, clock):
    """The second commit waits for the first one's lock on the branch, then sees it moved."""
    import threading

    from db.engine import session_scope
    from db.models import Project

    with session_scope() as session:
        session.add(Project(slug="moonlit-courier", name="Moonlit Courier"))
        session.flush()
        story = vc.create_story(
            session, "moonlit-courier", "moonlit", "M", author="mina", tree=first_draft, at=clock()
        )
        base = vc.resolve(session, story, "main").sha

    def edit_on(session, text, author):
        story = vc.get_story(session, "moonlit-courier", "moonlit")
        tree = story_edit.set_field(first_draft, "dispatch", "text", text)
        return vc.commit(session, story, tree, parent=base, author=author, message=text)

    first = session_scope()
    first_session = first.__enter__()
    mina = edit_on(first_session, "Mina's version.", "mina").sha  # holds the branch lock
    outcome: dict[str, Exception] = {}

    def ren() -> None:
        try:
            with session_scope() as other:
                edit_on(other, "Ren's version.", "ren")
        except Exception as exc:  # the test inspects what happened
            outcome["error"] = exc

    thread = threading.Thread(target=ren)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for mina's transaction
    first.__exit__(None, None, None)
    thread.join(30)
    assert isinstance(outcome.get("error"), vc.StaleHeadError)
    with session_scope() as session:
        story = vc.get_story(session, "moonlit-courier", "moonlit")
        assert heads(session, story) == {"main": mina}
        assert commit_count(session, story) == 2
