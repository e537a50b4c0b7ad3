"""Convert a graph saved from the ComfyUI editor (UI format) into API format.

The editor saves ``nodes`` (each with positional ``widgets_values``) and ``links``
(``[id, origin_id, origin_slot, target_id, target_slot, type]``). Widget values carry no
names: they follow the order of the node's widget inputs in ``/object_info`` (required, the
upload button the editor adds after them, then optional), with an editor-only
``control_after_generate`` value after each seed-like INT. This mirrors what the editor's
own "Save (API format)" does:

- links win over widget values; links through ``Reroute`` nodes are followed;
- ``PrimitiveNode`` (editor-only) hands its value to the inputs it feeds;
- ``Note``/``MarkdownNote`` are dropped; muted nodes (mode 2) are dropped and inputs fed by
  them left out; bypassed nodes (mode 4) are removed and their consumers rewired to the
  bypassed node's input of the same type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.catalogue import Catalogue, NodeDef
from workflows.errors import UIImportError
from workflows.graph import ApiGraph, node_sort_key

REROUTE_TYPES = frozenset({"Reroute", "Reroute (rgthree)"})
NOTE_TYPES = frozenset({"Note", "MarkdownNote", "Note (rgthree)", "Label (rgthree)"})
PRIMITIVE_TYPE = "PrimitiveNode"
MODE_MUTED = 2
MODE_BYPASSED = 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
# Value the editor stores for the upload button it adds to LoadImage-like nodes.
UPLOAD_VALUES = frozenset({"image", "video", "audio", "file", "upload"})

_Link = tuple[Any, int, Any, int, Any]  # origin_id, origin_slot, target_id, target_slot, type


def _parse_links(raw_links: Any, problems: list[str]) -> dict[Any, _Link]:
    links: dict[Any, _Link] = {}
    for raw in raw_links or []:
        if isinstance(raw, list) and len(raw) >= 5:
            link_id, origin, origin_slot, target, target_slot = raw[:5]
            link_type = raw[5] if len(raw) > 5 else None
        elif isinstance(raw, Mapping) and "id" in raw:  # newer schema writes links as objects
            link_id, origin, origin_slot = raw["id"], raw.get("origin_id"), raw.get("origin_slot")
            target, target_slot, link_type = (
                raw.get("target_id"),
                raw.get("target_slot"),
                raw.get("type"),
            )
        else:
            problems.append(f"malformed link entry {raw!r}")
            continue
        links[link_id] = (origin, origin_slot, target, target_slot, link_type)
    return links


def _widget_slots(node_def: NodeDef) -> list[tuple[str, str | None]]:
    """(kind, input name) in the order the editor lays widgets out for this node type."""
    slots: list[tuple[str, str | None]] = []
    for section in ("required", "optional"):
        # The editor appends its upload button as the last *required* input.
        if section == "optional" and any(spec.upload_flag for spec in node_def.required):
            slots.append(("upload", None))
        for spec in node_def.inputs.values():
            if spec.section != section or not spec.is_widget:
                continue
            slots.append(("input", spec.name))
            if spec.has_control_widget:
                slots.append(("control", None))
    return slots


def _widget_inputs(node: Mapping[str, Any], node_def: NodeDef) -> dict[str, Any]:
    values = node.get("widgets_values")
    if isinstance(values, Mapping):  # some nodes save widgets by name
        return {
            name: value
            for name, value in values.items()
            if name in node_def.inputs and node_def.inputs[name].is_widget
        }
    if not isinstance(values, list):
        return {}
    result: dict[str, Any] = {}
    index = 0
    for kind, name in _widget_slots(node_def):
        if index >= len(values):
            break
        value = values[index]
        if kind == "control":
            # Editor-only: how the seed changes after each queue. Absent in some savers.
            if isinstance(value, str) and value in CONTROL_VALUES:
                index += 1
            continue
        if kind == "upload":
            if value is None or (isinstance(value, str) and value in UPLOAD_VALUES):
                index += 1
            continue
        assert name is not None
        result[name] = value
        index += 1
    return result


class _Converter:
    def __init__(self, ui_graph: Mapping[str, Any], catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.problems: list[str] = []
        self.nodes: dict[Any, Mapping[str, Any]] = {}
        for raw in ui_graph.get("nodes") or []:
            if (
                not isinstance(raw, Mapping)
                or "id" not in raw
                or not isinstance(raw.get("type"), str)
            ):
                self.problems.append(f"malformed node entry (needs 'id' and 'type'): {raw!r}"[:200])
                continue
            self.nodes[raw["id"]] = raw
        self.links = _parse_links(ui_graph.get("links"), self.problems)
        subgraphs = (ui_graph.get("definitions") or {}).get("subgraphs") or []
        self.subgraph_ids = {s.get("id") for s in subgraphs if isinstance(s, Mapping)}

    @staticmethod
    def mode(node: Mapping[str, Any]) -> int:
        mode = node.get("mode", 0)
        return mode if isinstance(mode, int) else 0

    def describe(self, node: Mapping[str, Any]) -> str:
        return f"node {node['id']} ({node['type']})"

    def check_types(self) -> None:
        for node_id in sorted(self.nodes, key=lambda i: node_sort_key(str(i))):
            node = self.nodes[node_id]
            node_type = node["type"]
            if node_type in REROUTE_TYPES or node_type in NOTE_TYPES or node_type == PRIMITIVE_TYPE:
                continue
            if self.mode(node) in (MODE_MUTED, MODE_BYPASSED):
                continue  # never submitted, so the server need not know them
            if node_type in self.subgraph_ids:
                self.problems.append(
                    f"{self.describe(node)}: subgraphs are not supported; "
                    "unpack the subgraph in the editor and save again"
                )
            elif node_type not in self.catalogue:
                self.problems.append(
                    f"{self.describe(node)}: node type {node_type!r} is unknown to the server's "
                    "/object_info (custom node not installed?)"
                )

    def resolve(self, link_id: Any, target: Mapping[str, Any], input_name: str, input_type: Any):
        """Follow a link to ("link", [id, slot]) or ("value", v), or None when it feeds nothing."""
        seen: set[Any] = set()
        while True:
            if link_id in seen:
                self.problems.append(f"{self.describe(target)} input {input_name!r}: link loop")
                return None
            seen.add(link_id)
            link = self.links.get(link_id)
            if link is None:
                self.problems.append(
                    f"{self.describe(target)} input {input_name!r}: "
                    f"link {link_id} is not in 'links'"
                )
                return None
            origin_id, origin_slot = link[0], link[1]
            origin = self.nodes.get(origin_id)
            if origin is None:
                self.problems.append(
                    f"{self.describe(target)} input {input_name!r}: link {link_id} comes from "
                    f"node {origin_id}, which is not in the workflow"
                )
                return None
            origin_type = origin["type"]
            if origin_type in REROUTE_TYPES:
                inputs = origin.get("inputs") or []
                link_id = inputs[0].get("link") if inputs else None
                if link_id is None:
                    return None
                continue
            if origin_type == PRIMITIVE_TYPE:
                values = origin.get("widgets_values")
                return ("value", values[0]) if isinstance(values, list) and values else None
            if origin_type in NOTE_TYPES:
                return None
            mode = self.mode(origin)
            if mode == MODE_MUTED:
                return None
            if mode == MODE_BYPASSED:
                # As the editor does: the bypassed node's input at the same slot if its type
                # matches, else its first input of the same type.
                origin_inputs = origin.get("inputs") or []
                candidates = [origin_slot, *range(len(origin_inputs))]
                match = next(
                    (
                        origin_inputs[i]
                        for i in candidates
                        if isinstance(i, int)
                        and 0 <= i < len(origin_inputs)
                        and origin_inputs[i].get("type") == input_type
                    ),
                    None,
                )
                link_id = match.get("link") if match else None
                if link_id is None:
                    return None
                continue
            return ("link", [str(origin_id), origin_slot])

    def convert(self) -> ApiGraph:
        self.check_types()
        if self.problems:
            raise UIImportError(self.problems)
        api: ApiGraph = {}
        for node_id in sorted(self.nodes, key=lambda i: node_sort_key(str(i))):
            node = self.nodes[node_id]
            node_type = node["type"]
            if node_type in REROUTE_TYPES or node_type in NOTE_TYPES or node_type == PRIMITIVE_TYPE:
                continue
            if self.mode(node) in (MODE_MUTED, MODE_BYPASSED):
                continue
            node_def = self.catalogue.get(node_type)
            assert node_def is not None
            inputs = _widget_inputs(node, node_def)
            for slot in node.get("inputs") or []:
                if not isinstance(slot, Mapping) or slot.get("link") is None:
                    continue
                widget = slot.get("widget")
                name = widget.get("name") if isinstance(widget, Mapping) else None
                name = name or slot.get("name")
                resolved = self.resolve(slot["link"], node, str(name), slot.get("type"))
                if resolved is None:
                    continue  # fed by a muted node: the input is left out, as the editor does
                inputs[str(name)] = resolved[1]
            entry: dict[str, Any] = {"class_type": node_type, "inputs": inputs}
            entry["_meta"] = {"title": node.get("title") or node_def.display_name}
            api[str(node_id)] = entry
        if self.problems:
            raise UIImportError(self.problems)
        return api


def ui_to_api(ui_graph: Mapping[str, Any], object_info: Mapping[str, Any] | Catalogue) -> ApiGraph:
    """API-format graph from an editor-saved workflow, naming widget values via ``object_info``.

    Raises ``UIImportError`` listing every node whose type the server does not know (by node
    id and type) and every broken link.
    """
    if not isinstance(ui_graph, Mapping) or not isinstance(ui_graph.get("nodes"), list):
        raise UIImportError(["not an editor workflow: expected a JSON object with a 'nodes' list"])
    catalogue = object_info if isinstance(object_info, Catalogue) else Catalogue(object_info)
    return _Converter(ui_graph, catalogue).convert()
