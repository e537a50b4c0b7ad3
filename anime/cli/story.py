"""`anime story ...`: stories under version control, from the command line.

A story is named ``project/story`` (or just ``story`` when only one project has that slug).
Refs are branch names, commit ids or unique prefixes of them, and ``REF~N`` for N first
parents back. Each command is one transaction: it happens whole or not at all.
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from anime.cli.app import UserError, app, clear_errors
from anime.cli.db import require_current_schema

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from db.models import Story, StoryCommit
    from db.storyline.tree import StoryTree

story_app = typer.Typer(
    help="Stories: chapters and scenes under version control (branch, diff, merge).",
    no_args_is_help=True,
)
app.add_typer(story_app, name="story")

F = TypeVar("F", bound=Callable[..., Any])

STORY = typer.Argument(..., help="project/story (or story when its slug is unique)")
AUTHOR = typer.Option(None, "--author", help="who (default: $ANIME_AUTHOR, else the login name)")


def story_errors(fn: F) -> F:
    """Story failures are the user's to fix: say so in one message, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            # Imported on failure only: defining the commands must stay cheap (start-up time).
            from anime.story_edit import StoryEditError
            from anime.story_file import StoryFileError
            from db.story import StoryError

            if isinstance(exc, StoryError | StoryFileError | StoryEditError):
                raise UserError(str(exc)) from None
            raise

    return wrapper  # type: ignore[return-value]


def _author(given: str | None) -> str:
    if given and given.strip():
        return given.strip()
    return os.environ.get("ANIME_AUTHOR") or getpass.getuser()


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _decorations(session: Session, story: Story) -> dict[str, list[str]]:
    from db.story import list_branches

    names: dict[str, list[str]] = {}
    for branch in list_branches(session, story):
        names.setdefault(branch.head.sha, []).append(branch.name)
    return names


def _commit_line(commit: StoryCommit, labels: dict[str, list[str]]) -> str:
    branches = labels.get(commit.sha)
    deco = f" ({', '.join(branches)})" if branches else ""
    merge = " [merge " + " ".join(p.short for p in commit.parents) + "]"
    return (
        f"{commit.short}{deco}  {commit.committed_at:%Y-%m-%d %H:%M}  {commit.author}  "
        f"{_first_line(commit.message)}{merge if len(commit.parent_links) > 1 else ''}"
    )


@story_app.command("list")
@clear_errors
@story_errors
def list_(project: str | None = typer.Argument(None, help="project slug (default: all)")) -> None:
    """Stories with their branches and heads."""
    from db.engine import session_scope
    from db.story import list_branches, list_stories

    require_current_schema()
    with session_scope() as session:
        stories = list_stories(session, project)
        if not stories:
            typer.echo("no stories yet: `anime story create PROJECT/STORY --title ...`")
        for story in stories:
            typer.echo(f"{story.label}: {story.title}")
            for branch in list_branches(session, story):
                mark = "*" if branch.name == story.default_branch else " "
                head = branch.head
                typer.echo(f"  {mark} {branch.name:<20} {head.short}  {_first_line(head.message)}")


@story_app.command("create")
@clear_errors
@story_errors
def create(
    story: str = typer.Argument(..., help="project/story: the project and the new story's slug"),
    title: str = typer.Option(..., "--title", help="the story's title"),
    file: Path | None = typer.Option(None, "--file", "-f", help="Markdown or YAML first draft"),
    branch: str = typer.Option("main", "--branch", help="name of the default branch"),
    message: str = typer.Option("Start the story", "--message", "-m"),
    description: str = typer.Option("", "--description"),
    author: str | None = AUTHOR,
) -> None:
    """A new story, with its first commit (empty, or the file's tree)."""
    from anime.story_file import load_story_file
    from db.engine import session_scope
    from db.story import create_story, resolve

    if "/" not in story:
        raise UserError(f"{story!r}: write project/story for a new story")
    project, slug = story.split("/", 1)
    tree = load_story_file(file).tree if file else None
    require_current_schema()
    with session_scope() as session:
        created = create_story(
            session,
            project,
            slug,
            title,
            author=_author(author),
            tree=tree,
            message=message,
            branch=branch,
            description=description,
        )
        head = resolve(session, created, branch)
        typer.echo(f"created {created.label} on {branch} at {head.short}")


@story_app.command("log")
@clear_errors
@story_errors
def log(
    story: str = STORY,
    ref: str | None = typer.Argument(None, help="branch or commit (default: default branch)"),
    full: bool = typer.Option(
        False, "--full", help="every ancestor, merged lines included (default: first parents)"
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1),
    scene: str | None = typer.Option(
        None, "--scene", "-s", help="only commits that changed this scene (or chapter)"
    ),
) -> None:
    """History, newest first."""
    from db.engine import session_scope
    from db.story import find_story, history

    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        labels = _decorations(session, found)
        if scene is not None:
            from db.story_history import scene_log

            for commit, change in scene_log(session, found, scene, ref, limit=limit):
                typer.echo(f"{_commit_line(commit, labels)}\n    {change.headline()}")
            return
        for commit in history(session, found, ref, first_parent=not full, limit=limit):
            typer.echo(_commit_line(commit, labels))


@story_app.command("show")
@clear_errors
@story_errors
def show(
    story: str = STORY,
    ref: str | None = typer.Argument(None, help="branch or commit (default: default branch)"),
    stat: bool = typer.Option(False, "--stat", help="list changed elements without text"),
) -> None:
    """One commit: who, when, why, and what it changed against its first parent."""
    from db.engine import session_scope
    from db.story import commit_changes, find_story, resolve

    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        commit = resolve(session, found, ref or found.default_branch)
        labels = _decorations(session, found)
        branches = labels.get(commit.sha)
        typer.echo(f"commit {commit.sha}" + (f" ({', '.join(branches)})" if branches else ""))
        if commit.parent_links:
            typer.echo("parents: " + " ".join(p.sha for p in commit.parents))
        typer.echo(f"author: {commit.author}")
        typer.echo(f"date:   {commit.committed_at.isoformat()}")
        typer.echo(f"tree:   {commit.snapshot.sha}")
        typer.echo("")
        typer.echo("\n".join(f"    {line}" for line in commit.message.splitlines()) or "    -")
        typer.echo("")
        typer.echo(commit_changes(commit).render(with_text=not stat))


@story_app.command("diff")
@clear_errors
@story_errors
def diff(
    story: str = STORY,
    old: str = typer.Argument(
        ..., help="the older side: branch or commit; or an edited story file (vs its parent)"
    ),
    new: str | None = typer.Argument(None, help="the newer side (default: default branch)"),
    stat: bool = typer.Option(False, "--stat", help="list changed elements without text"),
) -> None:
    """What changed between two commits: chapters and scenes, with text diffs.

    Given a story file (from `checkout -o`), what its edits change against its parent.
    """
    from db.engine import session_scope
    from db.story import diff as story_diff
    from db.story import find_story

    edited = _story_file_argument(old)
    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        if edited is not None:
            from db.story import resolve, tree_of
            from db.storyline.tree import diff_trees

            if not edited.parent:
                raise UserError(f"{old} has no parent: line; give the commit to compare with")
            base = tree_of(resolve(session, found, new or edited.parent))
            result = diff_trees(base, edited.tree)
        else:
            result = story_diff(session, found, old, new or found.default_branch)
    typer.echo(result.render(with_text=not stat))
    if not result.is_empty:
        typer.echo(f"({result.summary()})")


@story_app.command("branch")
@clear_errors
@story_errors
def branch(
    story: str = STORY,
    name: str | None = typer.Argument(None, help="new branch (leave out to list branches)"),
    start: str | None = typer.Option(
        None, "--from", help="branch or commit to start at (default: default branch)"
    ),
    delete: bool = typer.Option(False, "--delete", help="delete the branch (commits stay)"),
    author: str | None = AUTHOR,
) -> None:
    """List branches, start one at any commit, or delete one."""
    from db.engine import session_scope
    from db.story import create_branch, delete_branch, find_story, list_branches

    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        if name is None:
            for b in list_branches(session, found):
                mark = "*" if b.name == found.default_branch else " "
                typer.echo(f"{mark} {b.name:<20} {b.head.short}  {_first_line(b.head.message)}")
            return
        if delete:
            head = delete_branch(session, found, name)
            typer.echo(f"deleted branch {name} (was at {head.short})")
            return
        created = create_branch(session, found, name, start, author=_author(author))
        typer.echo(f"branch {name} starts at {created.head.short}")


@story_app.command("checkout")
@clear_errors
@story_errors
def checkout(
    story: str = STORY,
    ref: str | None = typer.Argument(None, help="branch or commit (default: default branch)"),
    fmt: str = typer.Option("markdown", "--format", help="markdown | yaml | outline (titles only)"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="write a file to edit and commit (default: print)"
    ),
    force: bool = typer.Option(
        False, "--force", help="overwrite an -o file that holds edits not committed"
    ),
) -> None:
    """The story as it was at any commit, readable (or as a file to edit).

    Files written with -o carry the branch and parent that `anime story commit` needs. An
    existing file with edits not committed is left alone unless --force is given.
    """
    from anime.story_file import render_markdown, render_yaml
    from db.engine import session_scope
    from db.story import checkout as story_checkout
    from db.story import find_story, list_branches

    if fmt not in ("markdown", "yaml", "outline"):
        raise UserError(f"--format {fmt!r}: use markdown, yaml or outline")
    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        wanted = ref or found.default_branch
        commit, tree = story_checkout(session, found, wanted)
        if output is not None and output.exists() and not force:
            _refuse_to_overwrite_edits(session, found, output, tree)
        names = {b.name for b in list_branches(session, found)}
        on_branch = wanted if wanted in names else None
        header = {"story": found.label, "branch": on_branch, "parent": commit.sha}
    if fmt == "outline":
        lines = [f"{found.title} @ {commit.short}"]
        for chapter in tree.chapters:
            lines.append(f"  {chapter.slug}: {chapter.title}")
            for scene in chapter.scenes:
                words = len(scene.text.split())
                lines.append(f"    {scene.slug}: {scene.title} ({words} words)")
        text = "\n".join(lines) + "\n"
    else:
        text = (render_yaml if fmt == "yaml" else render_markdown)(tree, **header)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} ({found.label} at {commit.short})")


_STORY_SUFFIXES = (".md", ".markdown", ".yaml", ".yml")


def _story_file_argument(value: str):
    """A story file named where a ref may stand, or None: a path with a story file's suffix."""
    if not value.endswith(_STORY_SUFFIXES):
        return None
    from anime.story_file import load_story_file

    return load_story_file(value)


def _refuse_to_overwrite_edits(
    session: Session, story: Story, path: Path, wanted: StoryTree
) -> None:
    """A file whose tree is its parent's (or what would be written) holds nothing to lose."""
    from anime.story_file import StoryFileError, load_story_file
    from db.story import StoryError, resolve, tree_of

    try:
        existing = load_story_file(path)
    except StoryFileError:
        raise UserError(
            f"{path} exists and is not a story file this checkout wrote; nothing was written "
            "(--force overwrites it)"
        ) from None
    if existing.tree.sha == wanted.sha:
        return
    base = None
    if existing.parent:
        try:
            base = resolve(session, story, existing.parent)
        except StoryError:
            base = None
    if base is not None and tree_of(base).sha == existing.tree.sha:
        return
    against = f"its parent {base.short}" if base else "any commit of this story"
    raise UserError(
        f"{path} holds edits not committed (it differs from {against}); nothing was written. "
        f"Commit them (`anime story commit {story.label} {path} -m ...`), or give --force to "
        "overwrite them."
    )


def _same_text_renames(old: StoryTree, new: StoryTree) -> list[tuple[str, str]]:
    """(removed, added) scene slugs whose text is the same: most likely one scene renamed."""
    before = {slug: scene for slug, (_, scene) in old.scene_index().items()}
    after = {slug: scene for slug, (_, scene) in new.scene_index().items()}
    added = {slug: scene for slug, scene in after.items() if slug not in before}
    pairs = []
    for slug, scene in before.items():
        if slug in after or not scene.text.strip():
            continue
        for new_slug, candidate in added.items():
            if candidate.text == scene.text:
                pairs.append((slug, new_slug))
                break
    return pairs


def _confirm_renames(pairs: list[tuple[str, str]], yes: bool) -> None:
    import sys

    if not pairs or yes:
        return
    listed = "; ".join(f"{old!r} removed and {new!r} added" for old, new in pairs)
    warning = (
        f"scenes with the same text under a new slug: {listed}. The new slug starts a new "
        "scene, without the old one's history, blame or merges; keep the old anchor "
        "({#" + pairs[0][0] + "}) to edit the scene itself."
    )
    if sys.stdin.isatty() and typer.confirm(warning + " Commit anyway?", default=False):
        return
    raise UserError(warning + " Nothing was committed (--yes commits it as it is).")


def _pairs(values: list[str], option: str, sep: str = "=") -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        if sep not in value:
            raise UserError(f"{option} {value!r}: write KEY{sep}VALUE")
        key, rest = value.split(sep, 1)
        pairs.append((key.strip(), rest))
    return pairs


def _text_value(value: str, option: str) -> str:
    """``@path`` reads the text from a file, so long scene text needs no shell quoting."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{option}: cannot read {path}: {exc}") from None
    return value


def _apply_ops(tree: StoryTree, ops: dict[str, list[str]]) -> StoryTree:
    from anime import story_edit

    for slug, title in _pairs(ops["add_chapter"], "--add-chapter"):
        tree = story_edit.add_chapter(tree, slug, title.strip())
    for where, title in _pairs(ops["add_scene"], "--add-scene"):
        if "/" not in where:
            raise UserError(f"--add-scene {where!r}: write CHAPTER/SCENE=TITLE")
        chapter, slug = where.split("/", 1)
        tree = story_edit.add_scene(tree, chapter, slug, title.strip())
    for option, field in (("title", "title"), ("text", "text"), ("notes", "notes")):
        for slug, value in _pairs(ops[option], f"--{option}"):
            tree = story_edit.set_field(tree, slug, field, _text_value(value, f"--{option}"))
    for slug, target in _pairs(ops["move"], "--move"):
        chapter, _, position = target.partition(":")
        if position and not position.isdigit():
            raise UserError(f"--move {slug}={target}: write SCENE=CHAPTER or SCENE=CHAPTER:N")
        tree = story_edit.move_scene(tree, slug, chapter, int(position) if position else None)
    for slug in ops["remove"]:
        tree = story_edit.remove(tree, slug)
    return tree


@story_app.command("commit")
@clear_errors
@story_errors
def commit(
    story: str = STORY,
    file: Path | None = typer.Argument(
        None, help="the edited story (Markdown or YAML, e.g. from `checkout -o`)"
    ),
    message: str = typer.Option(..., "--message", "-m", help="why this version"),
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="default: the file's, else default"
    ),
    parent: str | None = typer.Option(
        None, "--parent", help="the commit your edit is based on (default: the file's parent:)"
    ),
    add_chapter: list[str] = typer.Option([], "--add-chapter", help="SLUG=TITLE"),
    add_scene: list[str] = typer.Option([], "--add-scene", help="CHAPTER/SLUG=TITLE"),
    title: list[str] = typer.Option([], "--title", help="SLUG=TITLE (chapter or scene)"),
    text: list[str] = typer.Option([], "--text", help="SCENE=TEXT or SCENE=@file"),
    notes: list[str] = typer.Option([], "--notes", help="SLUG=NOTES or SLUG=@file"),
    move: list[str] = typer.Option([], "--move", help="SCENE=CHAPTER[:POSITION]"),
    remove: list[str] = typer.Option([], "--remove", help="SLUG (a chapter goes with its scenes)"),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="commit a scene removed and re-added under a new slug"
    ),
    author: str | None = AUTHOR,
) -> None:
    """Commit a new version, from a story file or by edits given as options.

    Edits apply to the parent's tree in the order add-chapter, add-scene, title, text, notes,
    move, remove. The branch head must still be the parent the edit was based on: if someone
    committed in between, nothing is written. A committed file's `parent:` becomes the new
    commit, so the next edit of the same file commits on top of it.
    """
    from anime.story_file import load_story_file
    from db.engine import session_scope
    from db.story import commit as story_commit
    from db.story import find_story, resolve, tree_of

    ops = {
        "add_chapter": add_chapter,
        "add_scene": add_scene,
        "title": title,
        "text": text,
        "notes": notes,
        "move": move,
        "remove": remove,
    }
    edited = load_story_file(file) if file else None
    if edited is None and not any(ops.values()):
        raise UserError("nothing to commit: give a story file or edits (--text, --add-scene, ...)")
    for notice in edited.notices if edited else []:
        typer.echo(f"{file}: {notice}")
    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        if edited is not None and edited.story and edited.story not in (found.label, found.slug):
            raise UserError(f"{file} was checked out from {edited.story}, not {found.label}")
        target = branch or (edited.branch if edited else None) or found.default_branch
        base = parent or (edited.parent if edited else None)
        if edited is None and base is None:
            # Edits given on the command line apply to the head read in this same transaction,
            # which `commit` locks and re-checks: the head cannot move in between.
            base = resolve(session, found, target).sha
        tree = edited.tree if edited else tree_of(resolve(session, found, base or target))
        tree = _apply_ops(tree, ops)
        if base:
            _confirm_renames(_same_text_renames(tree_of(resolve(session, found, base)), tree), yes)
        made = story_commit(
            session,
            found,
            tree,
            branch=target,
            parent=base or "",
            author=_author(author),
            message=message,
            merge_of=edited.merge if edited else None,
        )
        label, sha, short = found.label, made.sha, made.short
        typer.echo(f"{target}: committed {short} ({_first_line(made.message)})")
    if file is not None and edited is not None:
        _write_checkout(file, tree, story=label, branch=target, parent=sha)
        typer.echo(f"{file}: parent is now {short}")


def _write_checkout(path: Path, tree: StoryTree, **header: str | None) -> None:
    """The file as a checkout of ``header['parent']`` writes it, in the file's own format."""
    from anime.story_file import render_markdown, render_yaml

    render = render_yaml if path.suffix in (".yaml", ".yml") else render_markdown
    path.write_text(render(tree, **header), encoding="utf-8")


@story_app.command("merge")
@clear_errors
@story_errors
def merge(
    story: str = STORY,
    source: str = typer.Argument(..., help="branch or commit to merge in"),
    into: str | None = typer.Option(None, "--into", help="branch to merge into (default: default)"),
    message: str | None = typer.Option(None, "--message", "-m"),
    no_ff: bool = typer.Option(
        False, "--no-ff", help="a merge commit even if a fast-forward would do"
    ),
    expect: str | None = typer.Option(
        None, "--expect", help="refuse unless the target branch is still at this commit"
    ),
    resolve: list[str] = typer.Option(
        [],
        "--resolve",
        help="SLUG=ours|theirs: settle that chapter's or scene's conflict (repeat; "
        "'chapters' for the order of chapters)",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="on conflict, write the merge here with conflict markers; committing the "
        "edited file makes the merge",
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an -o file with edits"),
    author: str | None = AUTHOR,
) -> None:
    """Three-way merge against the merge base.

    Conflicts are listed and nothing is written, unless --resolve settles each of them, or -o
    writes the merge as a file with git's conflict markers around both versions of each
    conflicting chapter or scene: keep one, then `anime story commit STORY FILE -m ...`.
    """
    from db.engine import session_scope
    from db.story import MergeConflictError, find_story
    from db.story import merge as story_merge

    resolutions = dict(_pairs(resolve, "--resolve"))
    for slug, side in resolutions.items():
        if side not in ("ours", "theirs"):
            raise UserError(f"--resolve {slug}={side}: write {slug}=ours or {slug}=theirs")
    require_current_schema()
    try:
        with session_scope() as session:
            found = find_story(session, story)
            result = story_merge(
                session,
                found,
                source,
                into,
                author=_author(author),
                message=message,
                expected_head=expect,
                fast_forward=not no_ff,
                resolutions=resolutions,
            )
            for conflict, side in result.resolved:
                typer.echo(f"resolved {conflict}: took {side}")
            if result.kind == "up-to-date":
                typer.echo(f"{result.branch} already contains {source}: nothing to do")
            elif result.kind == "fast-forward":
                typer.echo(
                    f"{result.branch}: fast-forward {result.previous.short} -> {result.head.short}"
                )
            else:
                base = result.base.short if result.base else "none"
                typer.echo(
                    f"{result.branch}: merged {source} as {result.head.short} "
                    f"(parents {result.previous.short} and "
                    f"{result.head.parents[1].short}, base {base})"
                )
    except MergeConflictError as exc:
        if output is None:
            raise UserError(
                f"{exc}\nSettle each with --resolve SLUG=ours|theirs, or write the merge to a "
                "file with conflict markers with -o FILE."
            ) from None
        _write_conflicts(story, source, into, output, force)
        raise typer.Exit(1) from None


def _write_conflicts(story: str, source: str, into: str | None, output: Path, force: bool) -> None:
    """The merge as a file to edit: both versions of each conflict between markers."""
    from anime.story_file import ConflictSides, render_markdown
    from db.engine import session_scope
    from db.story import find_story, merge_draft

    with session_scope() as session:
        found = find_story(session, story)
        draft = merge_draft(session, found, source, into)
        if output.exists() and not force:
            _refuse_to_overwrite_edits(session, found, output, draft.tree)
        sides = ConflictSides(
            draft.branch,
            source,
            draft.ours_tree,
            draft.theirs_tree,
            {c.slug for c in draft.conflicts if c.kind != "order"},
        )
        text = render_markdown(
            draft.tree,
            story=found.label,
            branch=draft.branch,
            parent=draft.ours.sha,
            merge=draft.theirs.sha,
            conflicts=sides,
        )
        listing = "\n".join(f"  {c}" for c in draft.conflicts)
    output.write_text(text, encoding="utf-8")
    typer.echo(
        f"merging {source} into {draft.branch} conflicts ({len(draft.conflicts)}); nothing was "
        f"committed:\n{listing}\n"
        f"wrote {output}: keep one version between each <<<<<<< and >>>>>>>, delete the "
        f"markers, then `anime story commit {found.label} {output} -m ...` commits the merge",
        err=True,
    )


@story_app.command("blame")
@clear_errors
@story_errors
def blame(
    story: str = STORY,
    ref: str | None = typer.Argument(None, help="branch or commit (default: default branch)"),
    scene: str | None = typer.Option(None, "--scene", "-s", help="only this scene or chapter"),
) -> None:
    """Each line of the story with the commit, author and date that wrote it last.

    Lines come along first parents: a line written on a merged branch shows the merge.
    """
    from db.engine import session_scope
    from db.story import find_story
    from db.story_history import blame as story_blame

    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        for element in story_blame(session, found, ref, scene):
            typer.echo(f"{element.kind} {element.slug}")
            for line in element.lines:
                c = line.commit
                who = f"{c.short}  {c.committed_at:%Y-%m-%d}  {c.author[:12]:<12}"
                typer.echo(f"  {who}  {line.line}")


@story_app.command("revert")
@clear_errors
@story_errors
def revert(
    story: str = STORY,
    commit_ref: str = typer.Argument(..., metavar="COMMIT", help="the commit to undo"),
    branch: str | None = typer.Option(None, "--branch", "-b", help="default: the default branch"),
    message: str | None = typer.Option(None, "--message", "-m"),
    resolve: list[str] = typer.Option(
        [],
        "--resolve",
        help="SLUG=ours (keep the branch's version) or SLUG=theirs (take the version before "
        "COMMIT) where a later commit changed the same thing",
    ),
    author: str | None = AUTHOR,
) -> None:
    """A new commit that undoes COMMIT's changes; later commits' changes stay."""
    from db.engine import session_scope
    from db.story import MergeConflictError, find_story
    from db.story_history import revert as story_revert

    resolutions = dict(_pairs(resolve, "--resolve"))
    require_current_schema()
    try:
        with session_scope() as session:
            found = find_story(session, story)
            undone, made = story_revert(
                session,
                found,
                commit_ref,
                branch,
                author=_author(author),
                message=message,
                resolutions=resolutions,
            )
            name = branch or found.default_branch
            typer.echo(f"{name}: committed {made.short} (reverts {undone.short})")
    except MergeConflictError as exc:
        raise UserError(f"{exc}\nSettle each with --resolve SLUG=ours|theirs.") from None


@story_app.command("moves")
@clear_errors
@story_errors
def moves(
    story: str = STORY,
    branch: str | None = typer.Argument(None, help="default: the default branch"),
) -> None:
    """Every move of a branch head, newest first (commits, merges, fast-forwards)."""
    from db.engine import session_scope
    from db.story import branch_moves, find_story

    require_current_schema()
    with session_scope() as session:
        found = find_story(session, story)
        for move in branch_moves(session, found, branch or found.default_branch):
            was = move.from_commit.short if move.from_commit else "(new)"
            typer.echo(
                f"{move.moved_at:%Y-%m-%d %H:%M}  {move.kind.value:<12} {was} -> "
                f"{move.to_commit.short}  {move.author}  {_first_line(move.message)}"
            )


@story_app.command("adapt")
@clear_errors
@story_errors
def adapt(
    project: str = typer.Argument(..., help="project slug"),
    episode: int = typer.Argument(..., help="episode number"),
    ref: str = typer.Argument(..., help="story@branch, story@commit or a commit id"),
    scene: list[str] = typer.Option(
        [], "--scene", help="a scene or chapter slug the episode adapts (repeat; default: all)"
    ),
    follow: str | None = typer.Option(
        None, "--follow", help="branch to compare with in `anime status`"
    ),
) -> None:
    """Record which story version an episode adapts."""
    from db.engine import session_scope
    from db.queries import get_episode
    from db.story import adapt_episode, adaptation_status

    require_current_schema()
    with session_scope() as session:
        row = get_episode(session, project, episode)
        adapt_episode(session, row, ref, scene, follow)
        drift = adaptation_status(session, row)
        typer.echo(f"episode {episode}: {drift.describe() if drift else 'no story version'}")
