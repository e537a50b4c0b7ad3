"""The project's layers, checked on the source: flows compose, tasks do, db/ persists, blocks
configure.

Every ``.py`` file of the shipped packages is parsed and every import in it counts, wherever it
stands (module level, inside a function, under ``if TYPE_CHECKING:``), as do
``importlib.import_module("...")`` calls with a literal name. A failure names file:line, the
import and the rule it breaks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Rule:
    folder: str  # relative to the repository root
    forbidden: tuple[str, ...]  # module prefixes: "prefect" also forbids "prefect.client"
    why: str
    forbidden_names: tuple[str, ...] = ()  # names that may not be imported from any module
    optional: bool = False  # skipped while the folder does not exist


RULES = (
    Rule(
        "db",
        ("anime", "prefect", "flows", "tasks", "blocks", "deployments"),
        "db/ persists: it sits below every other layer",
    ),
    Rule(
        "flows",
        ("sqlalchemy", "httpx", "psycopg", "prefect.client"),
        "flows compose: SQL and HTTP/API-client calls belong in tasks/",
        forbidden_names=("get_client",),
    ),
    Rule(
        "blocks",
        ("flows", "tasks", "anime", "deployments", "db.models", "db.engine", "sqlalchemy"),
        "blocks configure: no flow, task, CLI/API or ORM code",
    ),
    Rule(
        "workflows",
        (
            "anime",
            "blocks",
            "db",
            "deployments",
            "flows",
            "tasks",
            "prefect",
            "sqlalchemy",
            "httpx",
            "psycopg",
        ),
        "workflows/ is the pure template library: no other layer, no Prefect, no I/O clients",
    ),
    Rule("deployments", ("anime",), "deployments/ is called by anime/, never the reverse"),
    Rule(
        "tasks/scoring",
        ("prefect",),
        "the scoring code is pure: its Prefect tasks live outside tasks/scoring/",
        optional=True,
    ),
)


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # absolute dotted name
    names: tuple[str, ...]  # for `from module import a, b`
    text: str  # as written, for the message


def _absolute(module: str | None, level: int, path: Path, root: Path) -> str:
    if not level:
        return module or ""
    package = list(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([module] if module else [])])


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def imports_of(path: Path, root: Path = REPO) -> list[Import]:
    """Every import in the file, anywhere in its syntax tree."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(node.lineno, alias.name, (), f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, path, root)
            names = tuple(alias.name for alias in node.names)
            written = "." * node.level + (node.module or "")
            found.append(
                Import(node.lineno, module, names, f"from {written} import {', '.join(names)}")
            )
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_import_call(node.func)
        ):
            name = node.args[0].value
            found.append(Import(node.lineno, name, (), f"import_module({name!r})"))
    return sorted(found, key=lambda i: i.line)


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(rule: Rule, root: Path = REPO) -> list[str]:
    folder = root / rule.folder
    problems = []
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        where = path.relative_to(root).as_posix()
        for imp in imports_of(path, root):
            # `from db import models` reaches db.models as surely as `import db.models`.
            prefix = f"{imp.module}." if imp.module else ""
            reached = [imp.module, *(prefix + n for n in imp.names if n != "*")]
            hit = next(
                (p for p in rule.forbidden for m in reached if _matches(m, p)),
                None,
            )
            name = next((n for n in imp.names if n in rule.forbidden_names), None)
            if hit is None and name is None:
                continue
            what = hit if hit is not None else name
            problems.append(
                f"{where}:{imp.line}: {imp.text}  ({rule.folder}/ may not import {what})"
            )
    return problems


@pytest.mark.parametrize("rule", RULES, ids=[r.folder for r in RULES])
def test_layer(rule: Rule) -> None:
    if not (REPO / rule.folder).is_dir():
        if rule.optional:
            pytest.skip(f"{rule.folder}/ does not exist yet")
        pytest.fail(f"{rule.folder}/ is missing")
    found = violations(rule)
    assert not found, f"{rule.why}:\n" + "\n".join(found)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A planted violation of each kind is reported with its file and line."""
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "__init__.py").write_text("")
    (tmp_path / "db" / "bad.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import anime.cli\n"
        "if TYPE_CHECKING:\n"
        "    from tasks.production import in_session\n"
        "def later():\n"
        "    from prefect import flow\n"
        "    import importlib\n"
        "    return importlib.import_module('flows.cut')\n"
    )
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("")
    (tmp_path / "flows" / "bad.py").write_text(
        "async def f():\n"
        "    from prefect import get_client\n"
        "    from .. import tasks\n"
        "    import httpx\n"
    )
    db_rule = next(r for r in RULES if r.folder == "db")
    flows_rule = next(r for r in RULES if r.folder == "flows")
    assert violations(db_rule, tmp_path) == [
        "db/bad.py:3: import anime.cli  (db/ may not import anime)",
        "db/bad.py:5: from tasks.production import in_session  (db/ may not import tasks)",
        "db/bad.py:7: from prefect import flow  (db/ may not import prefect)",
        "db/bad.py:9: import_module('flows.cut')  (db/ may not import flows)",
    ]
    assert violations(flows_rule, tmp_path) == [
        "flows/bad.py:2: from prefect import get_client  (flows/ may not import get_client)",
        "flows/bad.py:4: import httpx  (flows/ may not import httpx)",
    ]


def _loaded_after_import(module: str) -> set[str]:
    """Modules present in a fresh interpreter after importing ``module``."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


NO_ORM = ("sqlalchemy", "db.models", "db.engine", "prefect", "anime")


@pytest.mark.parametrize(
    "module",
    [
        "db",
        "db.vocabulary",
        "db.storyline.tree",
        "db.storyline.merge",
        "db.storyline.spec",
        "db.production_file",
    ],
)
def test_pure_db_modules_load_no_orm(module: str) -> None:
    """The vocabulary, the storyline algebra and the production-file schema load no ORM."""
    loaded = _loaded_after_import(module)
    heavy = sorted(m for m in loaded if any(_matches(m, p) for p in NO_ORM))
    assert not heavy, f"importing {module} loaded {heavy[:10]}"


def test_a_block_needs_no_models_for_its_vocabulary() -> None:
    loaded = _loaded_after_import("blocks.quality")
    assert "db.vocabulary" in loaded
    assert not {m for m in loaded if _matches(m, "db.models")}
