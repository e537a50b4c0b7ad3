"""`anime story ...` as people use it: check out, edit the file, commit, branch, merge."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anime.cli import app
from db.engine import session_scope
from db.production_file import parse_production
from db.production_io import import_production


def anime(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, list(args), env={"ANIME_AUTHOR": "mina"})
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
    return result.output


@pytest.fixture
def story(db, draft_file):
    with session_scope() as session:
        import_production(
            session, parse_production({"project": {"slug": "moonlit-courier", "name": "MC"}})
        )
    out = anime(
        "story", "create", "moonlit-courier/moonlit", "--title", "Moonlit", "-f", str(draft_file)
    )
    assert out.startswith("created moonlit-courier/moonlit on main at ")
    return "moonlit"


def heads() -> str:
    return anime("story", "branch", "moonlit")


def test_checkout_edit_commit_and_the_stale_parent_check(story, tmp_path):
    checked_out = tmp_path / "work.md"
    anime("story", "checkout", story, "-o", str(checked_out))
    colleague = tmp_path / "colleague.md"
    anime("story", "checkout", story, "-o", str(colleague))
    text = checked_out.read_text()
    assert "branch: main" in text and "parent: " in text
    checked_out.write_text(text.replace("sealed envelope", "unmarked envelope"))
    out = anime("story", "commit", story, str(checked_out), "-m", "Unmarked")
    assert "main: committed" in out and "parent is now" in out

    # The writer's next edit of the same file commits on top of the first one.
    text = checked_out.read_text()
    checked_out.write_text(text.replace("unmarked envelope", "plain envelope"))
    anime("story", "commit", story, str(checked_out), "-m", "Plain")

    # A file checked out before those commits: its parent is no longer main's head.
    colleague.write_text(colleague.read_text().replace("sealed", "wax-sealed"))
    before = heads()
    out = anime("story", "commit", story, str(colleague), "-m", "Again", ok=False)
    assert "error: branch main of moonlit has moved on" in out
    assert heads() == before

    # Checking out over the colleague's edits would lose them: refused without --force.
    out = anime("story", "checkout", story, "-o", str(colleague), ok=False)
    assert "holds edits not committed" in out and "--force" in out
    assert "wax-sealed" in colleague.read_text()
    anime("story", "checkout", story, "-o", str(colleague), "--force")
    assert "plain envelope" in colleague.read_text()
    # An unedited checkout is overwritten without asking.
    anime("story", "checkout", story, "main~1", "-o", str(colleague))
    assert "unmarked envelope" in colleague.read_text()
    log = anime("story", "log", story)
    assert [line.split("  ")[-1] for line in log.splitlines()] == [
        "Plain",
        "Unmarked",
        "Start the story",
    ]
    assert "(main)" in log.splitlines()[0]

    # The old version, readable, as it was.
    old = anime("story", "checkout", story, "main~2")
    assert "Aki takes the sealed envelope." in old
    outline = anime("story", "checkout", story, "--format", "outline")
    assert "  night-delivery: The Night Delivery" in outline
    assert "    dispatch: Dispatch (10 words)" in outline

    diff = anime("story", "diff", story, "main~2", "main")
    assert "~ scene dispatch (chapter night-delivery) changed: text" in diff
    assert "-Rain on the office windows. Aki takes the sealed envelope." in diff
    assert "+Rain on the office windows. Aki takes the plain envelope." in diff


def test_branch_merge_conflict_then_clean_merge(story):
    anime("story", "branch", story, "alt-ending")
    anime("story", "commit", story, "--text", "rooftop=Ren is gone.", "-m", "main roof")
    anime(
        "story",
        "commit",
        story,
        "-b",
        "alt-ending",
        "--text",
        "rooftop=Ren smiles.",
        "--add-scene",
        "the-address/betrayal=Betrayal",
        "-m",
        "alt roof",
    )
    before = heads()
    out = anime("story", "merge", story, "alt-ending", ok=False)
    assert "conflicts (1); nothing was written" in out
    assert "scene rooftop: text changed differently on main and alt-ending" in out
    assert heads() == before

    # Resolve on the branch (take main's rooftop), then the merge goes through.
    anime("story", "commit", story, "-b", "alt-ending", "--text", "rooftop=Ren is gone.", "-m", "x")
    merged = anime("story", "merge", story, "alt-ending")
    assert merged.startswith("main: merged alt-ending as ")
    show = anime("story", "show", story, "main", "--stat")
    assert "parents: " in show and "+ scene betrayal (chapter the-address) added" in show
    full = anime("story", "log", story, "--full").splitlines()
    assert "[merge " in full[0] and len(full) == 5
    assert len(anime("story", "log", story).splitlines()) == 3  # first parents only


def test_fast_forward_shows_in_the_moves(story):
    anime("story", "branch", story, "polish")
    anime("story", "commit", story, "-b", "polish", "--notes", "dispatch=Tighter.", "-m", "p")
    assert "main: fast-forward" in anime("story", "merge", story, "polish")
    moves = anime("story", "moves", story).splitlines()
    assert "fast_forward" in moves[0] and "create" in moves[-1]


def test_bad_input_gets_one_clear_line(story, tmp_path):
    out = anime("story", "log", "nope", ok=False)
    assert out.strip() == "error: no story 'nope' in any project (`anime story list` shows them)"
    out = anime("story", "commit", story, "--remove", "nowhere", "-m", "x", ok=False)
    assert "remove nowhere: no chapter or scene 'nowhere'" in out
    bad = tmp_path / "bad.md"
    bad.write_text("# A {#a}\n## B {#Bad Slug}\ntext\n")
    out = anime("story", "commit", story, str(bad), "--parent", "main", "-m", "x", ok=False)
    assert "bad.md: line 2: anchor {#Bad Slug} is not a slug" in out and "{#bad-slug}" in out
    out = anime(
        "story", "commit", story, "--text", "dispatch=x", "-m", "x", "--parent", "abc", ok=False
    )
    assert "no branch or commit 'abc' (a commit prefix needs 4+ digits)" in out


def test_anchor_typos_are_errors_and_a_renamed_scene_asks_first(story, tmp_path):
    work = tmp_path / "work.md"
    anime("story", "checkout", story, "-o", str(work))
    text = work.read_text()
    assert "{#dispatch}" in text
    before = heads()

    # An anchor left open, or not a slug: the line is named, nothing is committed.
    work.write_text(text.replace("{#dispatch}", "{#Dispatch Office!"))
    out = anime("story", "commit", story, str(work), "-m", "typo", ok=False)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "{#dispatch}" in t)
    assert f"line {line}: anchor opened with {{# is never closed" in out
    work.write_text(text.replace("{#dispatch}", "{#Dispatch Office}"))
    out = anime("story", "commit", story, str(work), "-m", "typo", ok=False)
    assert f"line {line}: anchor {{#Dispatch Office}} is not a slug" in out
    assert heads() == before

    # The same scene under a new anchor: it would lose its history, so it asks first.
    work.write_text(text.replace("{#dispatch}", "{#the-dispatch}"))
    out = anime("story", "commit", story, str(work), "-m", "rename", ok=False)
    assert "'dispatch' removed and 'the-dispatch' added" in out and "--yes" in out
    assert heads() == before
    anime("story", "commit", story, str(work), "-m", "rename", "--yes")
    assert "{#the-dispatch}" in anime("story", "checkout", story)


def test_a_heading_without_latin_letters_gets_a_slug_and_is_told_which(story, tmp_path):
    work = tmp_path / "work.md"
    anime("story", "checkout", story, "-o", str(work))
    work.write_text(work.read_text() + "\n## 決意\nアキは決めた。\n")
    out = anime("story", "commit", story, str(work), "-m", "resolve")
    (notice,) = [line for line in out.splitlines() if "決意" in line]
    slug = notice.split("it is '")[1].split("'")[0]
    assert slug.startswith("scene-") and "{#your-slug}" in notice
    # The file now names the slug, so the next commit keeps the same scene.
    assert f"## 決意 {{#{slug}}}" in work.read_text()
    assert f"{slug}: 決意" in anime("story", "checkout", story, "--format", "outline")


def _diverge(story: str) -> str:
    anime("story", "branch", story, "alt-ending")
    anime("story", "commit", story, "--text", "rooftop=Ren is gone.", "-m", "main roof")
    anime(
        "story", "commit", story, "-b", "alt-ending", "--text", "rooftop=Ren smiles.",
        "--notes", "dispatch=Faster.", "-m", "alt roof",
    )  # fmt: skip
    return heads()


def test_merge_takes_a_resolution_per_scene(story):
    before = _diverge(story)
    out = anime("story", "merge", story, "alt-ending", ok=False)
    assert "--resolve SLUG=ours|theirs" in out and "-o FILE" in out
    out = anime("story", "merge", story, "alt-ending", "--resolve", "rooftop=mine", ok=False)
    assert "rooftop=ours or rooftop=theirs" in out
    assert heads() == before

    out = anime("story", "merge", story, "alt-ending", "--resolve", "rooftop=theirs")
    resolved = "resolved scene rooftop: text changed differently on main and alt-ending"
    assert f"{resolved}: took theirs" in out
    merged = anime("story", "checkout", story)
    assert "Ren smiles." in merged and "> Faster." in merged  # the clean change came along
    assert "[merge " in anime("story", "log", story).splitlines()[0]


def test_a_conflicting_merge_written_with_markers_commits_as_the_merge(story, tmp_path):
    before = _diverge(story)
    work = tmp_path / "merge.md"
    out = anime("story", "merge", story, "alt-ending", "-o", str(work), ok=False)
    assert "wrote " in out and heads() == before
    text = work.read_text()
    assert "<<<<<<< main\n## Rooftop {#rooftop}\nRen is gone.\n=======\n" in text
    assert "## Rooftop {#rooftop}\nRen smiles.\n>>>>>>> alt-ending" in text
    assert "merge: " in text and "> Faster." in text

    # Markers left in: the line is named and nothing is committed.
    out = anime("story", "commit", story, str(work), "-m", "Merge", ok=False)
    assert "conflict marker <<<<<<< left" in out and heads() == before

    resolved = text.replace("<<<<<<< main\n## Rooftop {#rooftop}\nRen is gone.\n=======\n", "")
    work.write_text(resolved.replace(">>>>>>> alt-ending\n", ""))
    anime("story", "commit", story, str(work), "-m", "Merge alt-ending, Ren smiles")
    show = anime("story", "show", story)
    assert len(show.split("parents: ")[1].splitlines()[0].split()) == 2
    assert "Ren smiles." in anime("story", "checkout", story)
    assert "merge: " not in work.read_text()  # the file is now a plain checkout of the merge
    # alt-ending is merged: merging it again has nothing to do.
    assert "already contains alt-ending" in anime("story", "merge", story, "alt-ending")


def test_what_a_writer_asks_of_history_log_scene_blame_revert_diff(story, tmp_path):
    anime("story", "commit", story, "--text", "rooftop=Ren waits.\nThe wind rises.", "-m", "Wind")
    anime("story", "commit", story, "--notes", "dispatch=Slower.", "-m", "Dispatch note")
    anime("story", "commit", story, "--text", "rooftop=Ren waits.\nThe wind drops.", "-m", "Calm")

    log = anime("story", "log", story, "--scene", "rooftop").splitlines()
    assert [line.split("  ")[-1] for line in log[::2]] == ["Calm", "Wind", "Start the story"]
    assert log[1].strip() == "~ scene rooftop (chapter the-address) changed: text"

    blame = anime("story", "blame", story, "--scene", "rooftop").splitlines()
    assert blame[0] == "scene rooftop"
    by_line = {line.split("  ")[-1]: line for line in blame[1:]}
    calm, wind = (anime("story", "log", story, "-n", "3").splitlines()[i][:10] for i in (0, 2))
    assert by_line["Ren waits."].lstrip().startswith(wind)
    assert by_line["The wind drops."].lstrip().startswith(calm)
    assert "mina" in by_line["The wind drops."]

    # Undo the note, keep everything after it.
    note = anime("story", "log", story, "-n", "2").splitlines()[1][:10]
    out = anime("story", "revert", story, note)
    assert f"(reverts {note})" in out
    now = anime("story", "checkout", story)
    assert "Slower." not in now and "The wind drops." in now
    # Undoing "Wind" clashes with "Calm", which changed the same text after it.
    out = anime("story", "revert", story, wind, ok=False)
    assert "scene rooftop: text changed differently" in out and "--resolve" in out
    anime("story", "revert", story, wind, "--resolve", "rooftop=theirs")
    assert "Ren is already waiting on the rooftop." in anime("story", "checkout", story)

    # diff of an edited file against the commit it was checked out from.
    work = tmp_path / "work.md"
    anime("story", "checkout", story, "-o", str(work))
    work.write_text(work.read_text().replace("already waiting", "waiting"))
    diff = anime("story", "diff", story, str(work))
    assert "~ scene rooftop (chapter the-address) changed: text" in diff
    assert "-Ren is already waiting on the rooftop." in diff
    assert "+Ren is waiting on the rooftop." in diff
