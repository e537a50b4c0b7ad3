"""The studio's own template folder: imported workflows, beside (and over) the shipped ones.

``ANIME_TEMPLATES_DIR`` names it; else ``$ANIME_DATA_DIR/templates``; else ``templates/`` in
the studio's data folder (the same default as ``db.engine.data_dir``, which this layer may
not import). Never inside the installed package. Each imported template is three files:
``<name>.json`` (API graph), ``<name>.manifest.yaml`` (the user may edit it) and
``<name>.import.json`` (where it came from, the graph's hash and the manifest as last
derived, so a re-import can tell the user's edits from its own).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workflows.graph import ApiGraph, canonical_json, graph_sha256

IMPORT_SUFFIX = ".import.json"


def studio_templates_dir() -> Path:
    configured = os.environ.get("ANIME_TEMPLATES_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    data = os.environ.get("ANIME_DATA_DIR")
    if data:
        return Path(data).expanduser().resolve() / "templates"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/tower-anime/templates")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tower-anime" / "templates"


@dataclass(frozen=True)
class ImportRecord:
    source: str
    graph_sha256: str
    derived: dict[str, Any]  # the manifest as import derived it, before any user edit


def read_record(root: Path, name: str) -> ImportRecord | None:
    path = root / f"{name}{IMPORT_SUFFIX}"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return ImportRecord(data["source"], data["graph_sha256"], data["derived"])


def merge_user_edits(
    derived: dict[str, Any], previous_derived: dict[str, Any] | None, current: dict[str, Any] | None
) -> dict[str, Any]:
    """The new derived manifest, with every field and parameter the user changed (or added,
    or removed) since the last import kept as the user left it."""
    if previous_derived is None or current is None:
        return derived
    merged = dict(derived)
    for key, value in current.items():
        if key in ("parameters", "version", "name"):
            continue
        if previous_derived.get(key) != value:
            merged[key] = value
    params = dict(derived.get("parameters", {}))
    before = previous_derived.get("parameters", {})
    now = current.get("parameters", {})
    for pname in set(before) | set(now):
        if pname in now and before.get(pname) != now[pname]:
            params[pname] = now[pname]  # edited or added by the user
        elif pname in before and pname not in now:
            params.pop(pname, None)  # the user removed it
    merged["parameters"] = params
    return merged


def _write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as fh:
        fh.write(text)
        tmp = Path(fh.name)
    os.replace(tmp, path)


def write_template(
    root: Path, name: str, graph: ApiGraph, manifest: dict[str, Any], record: ImportRecord
) -> None:
    """Graph first, then manifest, then record, each replaced whole (no half-written file)."""
    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / f"{name}.json", json.dumps(graph, indent=2, ensure_ascii=False) + "\n")
    header = (
        f"# Imported from {record.source}. Edit freely: `anime workflow import` keeps your\n"
        "# changes when the same workflow is imported again.\n"
    )
    _write_atomic(
        root / f"{name}.manifest.yaml",
        header + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100),
    )
    _write_atomic(
        root / f"{name}{IMPORT_SUFFIX}",
        json.dumps(
            {"source": record.source, "graph_sha256": record.graph_sha256,
             "derived": record.derived},
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
    )  # fmt: skip


def same_graph(a: ApiGraph, b: ApiGraph) -> bool:
    return canonical_json(a) == canonical_json(b)


__all__ = [
    "ImportRecord",
    "graph_sha256",
    "merge_user_edits",
    "read_record",
    "same_graph",
    "studio_templates_dir",
    "write_template",
]
