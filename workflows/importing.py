"""Import one workflow file as a studio template: read, convert, derive, merge, check, store.

Nothing is written unless the whole template (graph and manifest) checks out. The same file
imported twice gives the same template and version; a changed graph bumps the version; the
user's edits to the manifest survive a re-import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from workflows.catalogue import Catalogue
from workflows.derive import derive_manifest
from workflows.errors import ManifestError, UIImportError, WorkflowError
from workflows.graph import ApiGraph, graph_sha256
from workflows.manifest import TemplateManifest
from workflows.sources import WorkflowSourceError, read_workflow
from workflows.studio import (
    ImportRecord,
    merge_user_edits,
    read_record,
    studio_templates_dir,
    write_template,
)
from workflows.ui_import import ui_to_api


@dataclass
class ImportResult:
    name: str
    version: int
    status: Literal["imported", "updated", "unchanged"]
    source: Path
    format: str
    bound: list[tuple[str, str, str]] = field(default_factory=list)
    fixed: list[tuple[str, str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output_nodes: list[str] = field(default_factory=list)
    kept_edits: bool = False


def template_name(path: Path) -> str:
    """A template name from a file name: lower_snake_case, starting with a letter."""
    stem = path.name.split(".")[0]
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    return name if re.match(r"^[a-z]", name or "") else f"wf_{name or 'workflow'}"


def _check(name: str, graph: ApiGraph, manifest: dict[str, Any], path: Path) -> None:
    from workflows.templating import WorkflowTemplate, _check_template

    try:
        model = TemplateManifest.model_validate(manifest)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ManifestError(name, f"invalid manifest: {details}", path=str(path)) from None
    _check_template(WorkflowTemplate(name, model, graph, path, path))


def import_workflow(
    path: str | Path,
    catalogue: Catalogue | None,
    *,
    name: str | None = None,
    phase: str | None = None,
    kind: str | None = None,
    root: Path | None = None,
) -> ImportResult:
    """Import ``path`` into the studio template folder (``root``); see the module doc."""
    path = Path(path)
    root = root or studio_templates_dir()
    source = read_workflow(path)
    notes: list[str] = []
    if source.format == "ui":
        if catalogue is None:
            raise WorkflowSourceError(
                path, "an editor (UI) workflow needs the server's node catalogue to convert: "
                "give --server URL or --object-info FILE"
            )  # fmt: skip
        try:
            graph = ui_to_api(source.data, catalogue, notes=notes)
        except UIImportError as exc:
            raise WorkflowSourceError(path, str(exc)) from None
    else:
        graph = {str(k): v for k, v in source.data.items()}
        if catalogue is not None:
            unknown = sorted(
                f"node {nid} ({node['class_type']})"
                for nid, node in graph.items()
                if node["class_type"] not in catalogue
            )
            if unknown:
                raise WorkflowSourceError(
                    path, f"node type(s) unknown to the server's catalogue: {', '.join(unknown)}"
                )
    for node in graph.values():
        node.pop("is_changed", None)  # PNG prompts may carry execution-only keys
    name = name or template_name(path)
    derived = derive_manifest(name, graph, catalogue, phase=phase, kind=kind)
    if not derived.manifest["output_nodes"]:
        raise WorkflowSourceError(path, "the workflow has no output node (SaveImage, ...)")
    previous = read_record(root, name)
    manifest_path = root / f"{name}.manifest.yaml"
    current = (
        yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
        if manifest_path.is_file()
        else None
    )
    manifest = merge_user_edits(
        dict(derived.manifest), previous.derived if previous else None, current
    )
    digest = graph_sha256(graph)
    if current is not None:
        version = int(current.get("version", 1))
        changed = previous is None or previous.graph_sha256 != digest
        manifest["version"] = version + 1 if changed else version
        status: Literal["imported", "updated", "unchanged"] = "updated" if changed else "unchanged"
    else:
        status = "imported"
    try:
        _check(name, graph, manifest, manifest_path)
    except ManifestError as exc:
        raise WorkflowSourceError(path, str(exc)) from None
    except WorkflowError:
        raise
    kept = (
        previous is not None
        and current is not None
        and manifest
        != {
            **derived.manifest,
            "version": manifest["version"],
        }
    )
    if status != "unchanged" or manifest != current:
        record = ImportRecord(str(path.resolve()), digest, derived.manifest)
        write_template(root, name, graph, manifest, record)
    return ImportResult(
        name=name,
        version=int(manifest["version"]),
        status=status,
        source=path,
        format=f"{source.format} ({source.carrier})",
        bound=derived.bound,
        fixed=derived.fixed,
        notes=notes,
        output_nodes=list(manifest["output_nodes"]),
        kept_edits=kept,
    )
