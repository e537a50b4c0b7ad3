"""Story files: a story tree as Markdown or YAML, for reading, editing and committing.

Markdown (``.md``)::

    ---
    story: moonlit-courier/moonlit-courier
    branch: main
    parent: 3f2a...            # the commit this text was checked out from
    ---
    # The Night Delivery {#night-delivery}
    > a chapter note

    ## Dispatch {#dispatch}
    > a scene note
    Scene text, as many paragraphs as it takes.

``# `` starts a chapter, ``## `` a scene; ``{#slug}`` is optional (made from the title). Lines
starting with ``>`` are notes; a text line that must start with ``#``, ``>`` or ``\\`` is written
with a leading ``\\``. YAML (``.yaml``/``.yml``) holds the same keys: story, branch, parent and
chapters (each with slug, title, notes, scenes: slug, title, text, notes).

Errors name the file and the line (Markdown) or the path inside it (YAML).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from db.normalize import slugify
from db.storyline.tree import StoryChapter, StoryScene, StoryTree
from db.yaml_files import YamlBudgetError, load_yaml, read_capped

_HEADING = re.compile(r"^(#{1,2})[ \t]+(.*?)[ \t]*$")
_SLUG_MARK = re.compile(r"\s*\{#([^}]*)\}\s*$")
_VALID_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_HEADER_KEYS = ("story", "branch", "parent", "merge")
# Conflict markers as git writes them: a file holding one is not yet resolved.
_MARKERS = ("<<<<<<<", "=======", ">>>>>>>")


class StoryFileError(ValueError):
    """Everything wrong with one story file; nothing was committed."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [f"{file}: {len(problems)} problem(s); nothing was committed"]
        lines += [f"  {file}: {where or '<top>'}: {message}" for where, message in problems]
        super().__init__("\n".join(lines))


@dataclass
class StoryFile:
    """A tree plus where it came from: the commit it was based on is the optimistic check."""

    tree: StoryTree
    story: str | None = None
    branch: str | None = None
    parent: str | None = None
    # Set in a merge's checkout with conflict markers: committing the file is that merge.
    merge: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # What the reader decided for the writer (a slug made up for a heading), to be told.
    notices: list[str] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------


def _tree_problems(exc: ValidationError) -> list[tuple[str, str]]:
    from db.production_file import format_location

    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif err["type"] == "missing":
            message = "required field is missing"
        where = format_location(err["loc"])
        # Checks across the whole tree name their element in the message: lift it out.
        inner = re.match(r"^(chapters\[[^:\s]*): (.*)$", message, re.S)
        if inner:
            where = f"{where}.{inner.group(1)}" if where else inner.group(1)
            message = inner.group(2)
        problems.append((where, message))
    return problems


def _header(data: dict[str, Any], file: str, where: str) -> dict[str, str | None]:
    header: dict[str, str | None] = {}
    for key in _HEADER_KEYS:
        value = data.pop(key, None)
        if value is not None and not isinstance(value, str | int):
            raise StoryFileError(file, [(f"{where}{key}", "must be text")])
        header[key] = str(value) if value is not None else None
    return header


def parse_yaml_story(text: str, file: str = "<story>") -> StoryFile:
    try:
        data = load_yaml(text)
    except YamlBudgetError as exc:
        raise StoryFileError(file, [(exc.where, exc.message)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StoryFileError(file, [(where, f"not valid YAML: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StoryFileError(file, [("", "the file must hold a mapping with chapters: ...")])
    header = _header(data, file, "")
    try:
        tree = StoryTree.model_validate(data)
    except ValidationError as exc:
        raise StoryFileError(file, _tree_problems(exc)) from None
    return StoryFile(tree=tree, **header)


def _split_front_matter(lines: list[str], file: str) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            try:
                data = load_yaml("\n".join(lines[1:end])) or {}
            except YamlBudgetError as exc:
                raise StoryFileError(file, [("front matter", exc.message)]) from None
            except yaml.YAMLError as exc:
                raise StoryFileError(file, [("front matter", f"not valid YAML: {exc}")]) from None
            if not isinstance(data, dict):
                raise StoryFileError(file, [("front matter", "must be key: value lines")])
            return data, end + 1
    raise StoryFileError(file, [("line 1", "front matter opened with --- is never closed")])


def derived_slug(title: str, kind: str) -> str:
    """A slug for a title with no latin letters or digits (``決意``): stable, from its text."""
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()[:8]  # noqa: S324 - a name, not a secret
    return f"{kind}-{digest}"


def _heading(raw: str, line_no: int, kind: str) -> tuple[str, str, str | None, str | None]:
    """(title, slug, problem, notice) of a heading line's text.

    An anchor is taken as written or refused: a typo in it must not silently make a new slug,
    which would read as one scene removed and another added.
    """
    title, slug = raw, ""
    mark = _SLUG_MARK.search(raw)
    if mark:
        title, slug = raw[: mark.start()].strip(), mark.group(1).strip()
        if not _VALID_SLUG.fullmatch(slug):
            hint = ""
            with contextlib.suppress(ValueError):  # nothing latin to suggest from
                hint = f" (e.g. {{#{slugify(slug)}}})"
            return title, "", (
                f"anchor {{#{slug}}} is not a slug: lower-case letters, digits and '-'{hint}"
            ), None
        return title, slug, None, None
    if "{#" in raw:
        return title, "", "anchor opened with {# is never closed with }", None
    if not title:
        return title, "", "a heading needs a title or a {#slug}", None
    try:
        return title, slugify(title), None, None
    except ValueError:
        slug = derived_slug(title, kind)
        return title, slug, None, (
            f"line {line_no}: {kind} {title!r} has no latin letters or digits for a slug; "
            f"it is {slug!r} (write {{#your-slug}} after the title to choose one)"
        )


def parse_markdown_story(text: str, file: str = "<story>") -> StoryFile:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    front, start = _split_front_matter(lines, file)
    header = _header(front, file, "front matter: ")
    chapters: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    lines_of: dict[int, int] = {}  # id(element dict) -> line, for errors
    current: dict[str, Any] | None = None  # chapter or scene collecting lines
    body: list[str] = []
    notes: list[str] = []
    notices: list[str] = []

    def close() -> None:
        if current is None:
            return
        current["notes"] = "\n".join(notes)
        if "text" in current:
            current["text"] = "\n".join(body)

    for index in range(start, len(lines)):
        line, line_no = lines[index], index + 1
        if line.startswith(_MARKERS):
            problems.append(
                (
                    f"line {line_no}",
                    f"conflict marker {line.split()[0]} left: keep the version you want "
                    "(or write a new one) and delete the marker lines",
                )
            )
            continue
        heading = _HEADING.match(line)
        if heading:
            close()
            body, notes = [], []
            kind = "chapter" if len(heading.group(1)) == 1 else "scene"
            title, slug, problem, notice = _heading(heading.group(2), line_no, kind)
            if problem:
                problems.append((f"line {line_no}", problem))
            if notice:
                notices.append(notice)
            if len(heading.group(1)) == 1:
                current = {"slug": slug, "title": title, "scenes": []}
                chapters.append(current)
            elif not chapters:
                problems.append((f"line {line_no}", "a ## scene needs a # chapter above it"))
                current = None
                continue
            else:
                current = {"slug": slug, "title": title, "text": ""}
                chapters[-1]["scenes"].append(current)
            lines_of[id(current)] = line_no
            continue
        if line.startswith(">"):
            note = line[1:]
            notes.append(note[1:] if note.startswith(" ") else note)
            if current is None:
                problems.append((f"line {line_no}", "a note before the first # chapter"))
            continue
        if current is None or "text" not in current:
            if line.strip():
                where = "the first # chapter" if current is None else "the chapter's first ## scene"
                problems.append(
                    (
                        f"line {line_no}",
                        f"text before {where} (chapter notes start with >)",
                    )
                )
            continue
        body.append(line[1:] if line.startswith("\\") else line)
    close()
    if problems:
        raise StoryFileError(file, problems)
    try:
        tree = StoryTree.model_validate({"chapters": chapters})
    except ValidationError as exc:
        # Point at the Markdown line of the element the path names, when there is one.
        found = []
        for where, message in _tree_problems(exc):
            line = _markdown_line(where, chapters, lines_of)
            found.append((f"{line} ({where})" if line else where, message))
        raise StoryFileError(file, found) from None
    return StoryFile(tree=tree, notices=notices, **header)


def _markdown_line(where: str, chapters: list[dict[str, Any]], lines_of: dict[int, int]) -> str:
    match = re.match(r"chapters\[(\d+)\](?:\.scenes\[(\d+)\])?", where)
    if not match:
        return ""
    chapter = chapters[int(match.group(1))]
    element = chapter if match.group(2) is None else chapter["scenes"][int(match.group(2))]
    line = lines_of.get(id(element))
    return f"line {line}" if line else ""


def parse_story(text: str, file: str, fmt: str | None = None) -> StoryFile:
    fmt = fmt or ("yaml" if file.endswith((".yaml", ".yml")) else "markdown")
    if fmt == "yaml":
        return parse_yaml_story(text, file)
    return parse_markdown_story(text, file)


def load_story_file(path: str | Path) -> StoryFile:
    path = Path(path)
    try:
        text = read_capped(path)
    except YamlBudgetError as exc:
        raise StoryFileError(str(path), [("", exc.message)]) from None
    except FileNotFoundError:
        raise StoryFileError(str(path), [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoryFileError(str(path), [("", f"cannot be read: {exc}")]) from None
    return parse_story(text, str(path))


# --- writing ---------------------------------------------------------------------------------


def _escape(line: str) -> str:
    return "\\" + line if line.startswith(("#", ">", "\\", *_MARKERS)) else line


def _heading_line(marks: str, title: str, slug: str) -> str:
    return f"{marks} {title} {{#{slug}}}" if title else f"{marks} {{#{slug}}}"


def _front_matter(
    story: str | None, branch: str | None, parent: str | None, merge: str | None = None
) -> list[str]:
    values = {"story": story, "branch": branch, "parent": parent, "merge": merge}
    kept = {k: v for k, v in values.items() if v}
    if not kept:
        return []
    return ["---", *(f"{k}: {v}" for k, v in kept.items()), "---"]


def _chapter_head(chapter: StoryChapter) -> list[str]:
    out = [_heading_line("#", chapter.title, chapter.slug)]
    return out + ([f"> {n}".rstrip() for n in chapter.notes.split("\n")] if chapter.notes else [])


def _scene_lines(scene: StoryScene) -> list[str]:
    out = [_heading_line("##", scene.title, scene.slug)]
    out += [f"> {n}".rstrip() for n in scene.notes.split("\n")] if scene.notes else []
    return out + ([_escape(line) for line in scene.text.split("\n")] if scene.text else [])


@dataclass
class ConflictSides:
    """Both versions of the elements a merge could not combine, for conflict markers."""

    ours_name: str
    theirs_name: str
    ours: StoryTree
    theirs: StoryTree
    slugs: set[str]

    def block(self, slug: str, lines_of: Callable[[Any], list[str]]) -> list[str]:
        mine, other = self.ours.find(slug), self.theirs.find(slug)
        return [
            f"{_MARKERS[0]} {self.ours_name}",
            *(lines_of(mine) if mine is not None else []),
            _MARKERS[1],
            *(lines_of(other) if other is not None else []),
            f"{_MARKERS[2]} {self.theirs_name}",
        ]


def render_markdown(
    tree: StoryTree,
    story: str | None = None,
    branch: str | None = None,
    parent: str | None = None,
    merge: str | None = None,
    conflicts: ConflictSides | None = None,
) -> str:
    """Markdown that parses back to the same tree (and so the same snapshot hash).

    With ``conflicts``, each conflicting chapter heading or scene is written as both versions
    between git's conflict markers; the file parses once the writer has kept one of each.
    """
    out = _front_matter(story, branch, parent, merge)
    marked = conflicts.slugs if conflicts else set()
    for chapter in tree.chapters:
        if out:
            out.append("")
        if chapter.slug in marked and conflicts:
            out += conflicts.block(chapter.slug, _chapter_head)
        else:
            out += _chapter_head(chapter)
        for scene in chapter.scenes:
            out.append("")
            if scene.slug in marked and conflicts:
                out += conflicts.block(scene.slug, _scene_lines)
            else:
                out += _scene_lines(scene)
    return "\n".join(out) + "\n"


def render_yaml(
    tree: StoryTree,
    story: str | None = None,
    branch: str | None = None,
    parent: str | None = None,
    merge: str | None = None,
) -> str:
    values = {"story": story, "branch": branch, "parent": parent, "merge": merge}
    header = {k: v for k, v in values.items() if v}
    return yaml.safe_dump(
        {**header, **tree.canonical()}, sort_keys=False, allow_unicode=True, width=100
    )


__all__ = [
    "ConflictSides",
    "StoryFile",
    "StoryFileError",
    "load_story_file",
    "parse_markdown_story",
    "parse_story",
    "parse_yaml_story",
    "render_markdown",
    "render_yaml",
]
