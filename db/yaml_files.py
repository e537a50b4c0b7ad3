"""YAML files people hand the studio (production and story files), read within budgets.

Two budgets, each refused with one clear message before anything is stored: a file size cap
(ANIME_MAX_YAML_BYTES) and an alias expansion budget. Anchors and aliases are a fine way to
share a cast between cuts, but nine nested aliases of nine make a "billion laughs": 11 KB of
text that expands to hundreds of millions of values once stored as JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Values alias expansion may add beyond those written out: far above any shared cast or
# settings block, far below what hurts (the bomb in issue 18 expands to ~400 million).
ALIAS_EXPANSION_BUDGET = 100_000


class YamlBudgetError(ValueError):
    """The file is over a budget; ``where`` is the line (or '') it was noticed at."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


def max_yaml_bytes() -> int:
    raw = os.environ.get("ANIME_MAX_YAML_BYTES", "").strip()
    try:
        return int(raw.replace("_", "")) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        raise YamlBudgetError(
            "", f"ANIME_MAX_YAML_BYTES must be a whole number, not {raw!r}"
        ) from None


def read_capped(path: Path) -> str:
    """The file's text, refused without reading it when it is over the size cap."""
    cap = max_yaml_bytes()
    size = path.stat().st_size
    if size > cap:
        raise YamlBudgetError(
            "", f"the file is {size:,} bytes, over the {cap:,} allowed (ANIME_MAX_YAML_BYTES)"
        )
    return path.read_text(encoding="utf-8")


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the document holds once every alias is expanded, without expanding."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    distinct = 0

    def size(node: yaml.Node) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            mark = node.start_mark
            raise YamlBudgetError(f"line {mark.line + 1}", "an alias refers to itself (recursive)")
        in_progress.add(key)
        distinct += 1
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        in_progress.discard(key)
        sizes[key] = total
        return total

    try:
        expanded = size(root)
    except RecursionError:
        raise YamlBudgetError("", "values are nested too deeply") from None
    if expanded - distinct > ALIAS_EXPANSION_BUDGET:
        raise YamlBudgetError(
            "",
            f"aliases expand the file to {expanded:,} values, {expanded - distinct:,} more than "
            f"written (at most {ALIAS_EXPANSION_BUDGET:,} allowed): use fewer nested aliases",
        )


def load_yaml(text: str, loader: type[Any] = yaml.SafeLoader) -> Any:
    """``yaml.load`` with ``loader`` (a SafeLoader kind), refusing alias bombs before building."""
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return instance.construct_document(node)
    finally:
        instance.dispose()


__all__ = [
    "ALIAS_EXPANSION_BUDGET",
    "YamlBudgetError",
    "load_yaml",
    "max_yaml_bytes",
    "read_capped",
]
