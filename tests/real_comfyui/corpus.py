"""The ComfyUI workflow-template corpus, converted and offered to a real ComfyUI's /prompt.

Placeholder files make the graphs' model and input names valid: which folder backs which combo
is asked of the server itself (a probe file in each model folder and in input/, then one
/object_info read), so no table of node types to folders is kept here.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from workflows import Catalogue, UIImportError, ui_to_api
from workflows.graph import ApiGraph

PROBE = "zz-corpus-probe"
INPUT_PROBES = (".png", ".mp4", ".wav")


def tiny_png() -> bytes:
    """A valid 1x1 PNG, so image loaders that open the file at validation succeed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = zlib.compress(b"\x00\x00\x00\x00")
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def editor_workflows(folder: Path) -> dict[str, dict[str, Any]]:
    """Every editor-format (UI) workflow in a templates folder, by file name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("nodes"), list):
            found[path.name] = data
    return found


def combo_folders(url: str, base: Path) -> dict[tuple[str, str], Path]:
    """(class_type, input) -> the directory whose files that combo lists, learnt by probing."""
    folders = httpx.get(f"{url}/models", timeout=30).json()
    probes: dict[str, Path] = {}
    for folder in folders:
        if folder in ("custom_nodes", "configs"):
            continue
        directory = base / "models" / folder
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{PROBE}-{folder}.safetensors"
        (directory / name).touch()
        probes[name] = directory
    for where in ("input", "output"):  # LoadImageOutput lists the output folder
        (base / where).mkdir(parents=True, exist_ok=True)
        for suffix in INPUT_PROBES:
            name = f"{PROBE}-{where}{suffix}"
            (base / where / name).write_bytes(tiny_png() if suffix == ".png" else b"")
            probes[name] = base / where
    try:
        object_info = httpx.get(f"{url}/object_info", timeout=120).json()
    finally:
        for name, directory in probes.items():
            (directory / name).unlink(missing_ok=True)
    catalogue = Catalogue(object_info)
    mapping: dict[tuple[str, str], Path] = {}
    for class_type in object_info:
        node_def = catalogue.get(class_type)
        if node_def is None:
            continue
        for spec in node_def.inputs.values():
            folder = spec.options.get("image_folder")  # a list the editor fetches itself
            if isinstance(folder, str) and folder in ("input", "output", "temp"):
                mapping[(class_type, spec.name)] = base / folder
            for choice in spec.choices or ():
                if isinstance(choice, str) and choice.split(" [")[0] in probes:
                    mapping[(class_type, spec.name)] = probes[choice.split(" [")[0]]
                    break
    return mapping


def place_files(
    graph: ApiGraph, catalogue: Catalogue, folders: Mapping[tuple[str, str], Path]
) -> None:
    """Placeholder files for every model or input name the graph uses that the server lacks."""
    for node in graph.values():
        node_def = catalogue.get(node["class_type"])
        if node_def is None:
            continue
        for name, value in node["inputs"].items():
            directory = folders.get((node["class_type"], name))
            spec = node_def.inputs.get(name)
            if directory is None or not isinstance(value, str) or not value or spec is None:
                continue
            if spec.choices and value in spec.choices:
                continue
            value, annotated = _annotated(value)
            if annotated is not None:  # "name.png [output]": the file lives in that folder
                directory = directory.parent / annotated
            path = directory / value.replace("\\", "/")
            if ".." in Path(value).parts or path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tiny_png() if path.suffix.lower() == ".png" else b"")


def _annotated(value: str) -> tuple[str, str | None]:
    for folder in ("input", "output", "temp"):
        if value.endswith(f" [{folder}]"):
            return value[: -len(folder) - 3], folder
    return value, None


@dataclass
class CorpusResult:
    total: int = 0
    converted: dict[str, ApiGraph] = field(default_factory=dict)
    missing_nodes: dict[str, list[str]] = field(default_factory=dict)  # file -> node types
    refused: dict[str, str] = field(default_factory=dict)  # converter defects
    rejected: dict[str, str] = field(default_factory=dict)  # /prompt refused a converted graph
    # /prompt refused only choices this server's version lacks (a newer ComfyUI's options)
    needs_newer: dict[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.converted) - len(self.rejected) - len(self.needs_newer)

    @property
    def known(self) -> int:
        """Workflows whose node types the server knows."""
        return self.total - len(self.missing_nodes)

    def report(self, title: str) -> str:
        lines = [
            f"{title}: {self.total} editor workflows; {len(self.missing_nodes)} need nodes this "
            f"server lacks; of the other {self.known}: {len(self.converted)} converted, "
            f"{len(self.refused)} refused; {self.accepted} accepted by /prompt, "
            f"{len(self.rejected)} rejected, {len(self.needs_newer)} need options of a newer server"
        ]
        for name, types in sorted(self.missing_nodes.items()):
            lines.append(f"  needs nodes this server lacks: {name}: {', '.join(types)}")
        for name, why in sorted(self.refused.items()):
            lines.append(f"  refused: {name}: {why}")
        for name, why in sorted(self.rejected.items()):
            lines.append(f"  rejected by /prompt: {name}: {why}")
        for name, why in sorted(self.needs_newer.items()):
            lines.append(f"  needs a newer server: {name}: {why}")
        return "\n".join(lines)


def convert_all(workflows: Mapping[str, Mapping[str, Any]], catalogue: Catalogue) -> CorpusResult:
    result = CorpusResult(total=len(workflows))
    for name, ui in workflows.items():
        try:
            result.converted[name] = ui_to_api(ui, catalogue)
        except UIImportError as exc:
            if exc.missing_node_types:
                result.missing_nodes[name] = exc.missing_node_types
            else:
                result.refused[name] = "; ".join(exc.problems)
    return result


def submit_all(url: str, graphs: Iterable[tuple[str, ApiGraph]], result: CorpusResult) -> None:
    """Offer each graph to /prompt; an accepted one is dropped from the queue at once, so the
    test exercises the server's validation and nothing heavy runs."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, graph in graphs:
            answer = client.post("/prompt", json={"prompt": graph, "client_id": "corpus"})
            if answer.status_code == 200:
                client.post("/queue", json={"clear": True})
                client.post("/interrupt")
                continue
            body = (
                answer.json()
                if answer.headers.get("content-type", "").startswith("application/json")
                else {"error": answer.text}
            )
            errors = [
                err
                for node_error in (body.get("node_errors") or {}).values()
                for err in node_error.get("errors", [])
            ]
            newer = errors and all(err.get("type") == "value_not_in_list" for err in errors)
            (result.needs_newer if newer else result.rejected)[name] = _prompt_error(body)
        client.post("/queue", json={"clear": True})
        client.post("/interrupt")


def _prompt_error(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    parts = [error.get("message", str(error)) if isinstance(error, Mapping) else str(error)]
    for node_id, node_error in (body.get("node_errors") or {}).items():
        for err in node_error.get("errors", []):
            parts.append(
                f"node {node_id} ({node_error.get('class_type')}): {err.get('message')}: "
                f"{err.get('details')}"
            )
    return "; ".join(parts)[:600]
