"""Convert a graph saved from the ComfyUI editor (UI format) into API format.

The editor saves ``nodes`` (each with positional ``widgets_values``) and ``links``
(``[id, origin_id, origin_slot, target_id, target_slot, type]`` or objects). Widget values
carry no names: the editor assigns them by position to the widgets it builds from the node's
``/object_info`` entry (required inputs in ``input_order``, an editor-only
``control_after_generate`` widget right after each seed-like number, the upload button after
the required inputs, then optional inputs). The position is all that counts: a control slot
holds whatever an older editor wrote there (``"randomize"``, ``true``, ...) and is skipped.
A value missing at the end takes the widget's declared default, as the editor's freshly
created widget would. This mirrors the editor's own graph-to-prompt conversion:

- links win over widget values; links through ``Reroute`` nodes are followed;
- ``PrimitiveNode`` (editor-only) hands its value to the inputs it feeds;
- subgraphs (``definitions.subgraphs``, frontend 1.24+) are flattened: inner nodes get the
  ids ``"<instance id>:<inner id>"`` the editor gives them, subgraph inputs and outputs are
  wired through; a subgraph input left unconnected outside leaves the inner widget's value;
- ``Note``/``MarkdownNote`` are dropped; muted nodes (mode 2) are dropped and inputs fed by
  them left out; bypassed nodes (mode 4) are removed and their consumers rewired to the
  bypassed node's input of the same type (same slot first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.catalogue import Catalogue, InputSpec, NodeDef
from workflows.errors import UIImportError
from workflows.graph import ApiGraph, node_sort_key

REROUTE_TYPES = frozenset({"Reroute", "Reroute (rgthree)"})
NOTE_TYPES = frozenset({"Note", "MarkdownNote", "Note (rgthree)", "Label (rgthree)"})
PRIMITIVE_TYPE = "PrimitiveNode"
VIRTUAL_TYPES = REROUTE_TYPES | NOTE_TYPES | {PRIMITIVE_TYPE}
MODE_MUTED = 2
MODE_BYPASSED = 4
# Value the editor stores for the upload button it adds to LoadImage-like nodes.
UPLOAD_VALUES = frozenset({"image", "video", "audio", "file", "upload"})
# Ids of a subgraph's own input and output nodes in its links.
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
MAX_SUBGRAPH_DEPTH = 16

LinkKey = tuple[str, Any]  # (scope: "" or the instance path, link id in that scope)


@dataclass
class _Node:
    id: str  # flat id: "5", or "12:5" inside subgraph instance 12
    type: str
    mode: int
    raw: Mapping[str, Any]
    # (input name, slot type, link key or None) per saved input slot
    inputs: list[tuple[str, Any, LinkKey | None]] = field(default_factory=list)


@dataclass(frozen=True)
class _Link:
    origin: str | None  # flat node id, or None when aliasing another link
    slot: int
    type: Any
    alias: LinkKey | None = None  # a link that stands for this one (subgraph boundaries)
    unconnected: bool = False  # a subgraph input nobody feeds from outside


def _mode(raw: Mapping[str, Any]) -> int:
    mode = raw.get("mode", 0)
    return mode if isinstance(mode, int) and not isinstance(mode, bool) else 0


def _parse_links(raw_links: Any, problems: list[str], where: str) -> dict[Any, tuple]:
    links: dict[Any, tuple] = {}
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
            problems.append(f"{where}malformed link entry {raw!r}"[:200])
            continue
        links[link_id] = (origin, origin_slot, target, target_slot, link_type)
    return links


def _widget_slots(node_def: NodeDef) -> list[tuple[str, InputSpec | None]]:
    """(kind, input) in the order the editor lays widgets out for this node type."""
    slots: list[tuple[str, InputSpec | None]] = []
    for section in ("required", "optional"):
        # The editor appends its upload button as the last *required* input.
        if section == "optional" and any(spec.upload_flag for spec in node_def.required):
            slots.append(("upload", None))
        for spec in node_def.inputs.values():
            if spec.section != section or not spec.is_widget:
                continue
            slots.append(("input", spec))
            if spec.has_control_widget:
                slots.append(("control", None))
    return slots


def widget_default(spec: InputSpec) -> Any:
    """The value a freshly created editor widget holds: the declared default, else the
    first choice of a combo, else the type's zero."""
    if "default" in spec.options:
        return spec.options["default"]
    if spec.type == "COMBO":
        return spec.choices[0] if spec.choices else None
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(spec.type)


def value_fits(spec: InputSpec, value: Any) -> bool:
    """Whether a saved widget value can be this input's (type and range; a combo's missing
    choice still fits: a model file the server lacks is reported by validation, not here)."""
    if spec.type in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if spec.type == "INT" and isinstance(value, float) and not value.is_integer():
            return False
        low, high = spec.options.get("min"), spec.options.get("max")
        return not (
            (isinstance(low, int | float) and value < low)
            or (isinstance(high, int | float) and value > high)
        )
    if spec.type == "BOOLEAN":
        return isinstance(value, bool)
    if spec.type == "STRING":
        return isinstance(value, str)
    if spec.type == "COMBO":
        return bool(spec.choices and value in spec.choices) or isinstance(value, str)
    return True


def _positional(values: list[Any], node_def: NodeDef) -> dict[str, Any]:
    result: dict[str, Any] = {}
    index = 0
    for kind, spec in _widget_slots(node_def):
        if kind == "control":
            index += 1  # editor-only, whatever an older editor stored there
            continue
        if kind == "upload":
            # Consumed when present; newer editors do not serialize the button at all.
            if index < len(values) and (
                values[index] is None
                or (isinstance(values[index], str) and values[index] in UPLOAD_VALUES)
            ):
                index += 1
            continue
        assert spec is not None
        if index < len(values):
            result[spec.name] = values[index]
        index += 1
    return result


def _aligned(values: list[Any], specs: list[InputSpec]) -> dict[str, Any] | None:
    """Values saved by another version of the node type, matched to this version's widgets
    in order (each value to the next widget it fits, the best such matching overall), or
    None when some value fits nowhere."""
    n, m = len(values), len(specs)
    # best[i][j]: most values placed among values[i:] and specs[j:]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = 1 + best[i + 1][j + 1] if value_fits(specs[j], values[i]) else -1
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    result: dict[str, Any] = {}
    i = j = 0
    while i < n and j < m:
        if value_fits(specs[j], values[i]) and best[i][j] == 1 + best[i + 1][j + 1]:
            result[specs[j].name] = values[i]
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return result


def _widget_inputs(
    raw: Mapping[str, Any], node_def: NodeDef, notes: list[str], where: str
) -> dict[str, Any]:
    values = raw.get("widgets_values")
    specs = [spec for kind, spec in _widget_slots(node_def) if kind == "input" and spec]
    if isinstance(values, Mapping):  # some nodes (VHS) save widgets by name
        result = {
            name: value
            for name, value in values.items()
            if name in node_def.inputs and node_def.inputs[name].is_widget
        }
    else:
        values = values if isinstance(values, list) else []
        result = _positional(values, node_def)
        misfit = [s.name for s in specs if s.name in result and not value_fits(s, result[s.name])]
        if misfit:
            # Saved by another version of this node type (its widgets moved): the editor would
            # mis-assign too; realign when every value then finds a widget it fits.
            realigned = _aligned(values, specs)
            if realigned is not None and all(
                value_fits(s, realigned[s.name]) for s in specs if s.name in realigned
            ):
                notes.append(
                    f"{where}: widget values {values!r} do not fit this server's inputs by "
                    f"position ({', '.join(misfit)}); saved by another version of "
                    f"{node_def.class_type}, realigned by type"
                )
                result = realigned
    for spec in specs:
        if spec.name not in result:
            default = widget_default(spec)
            if default is not None:
                result[spec.name] = default
    return result


class _Converter:
    def __init__(self, ui_graph: Mapping[str, Any], catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.problems: list[str] = []
        self.notes: list[str] = []  # what the conversion had to guess, for the import report
        self.nodes: dict[str, _Node] = {}
        self.links: dict[LinkKey, _Link] = {}
        # Expanded subgraph instances: flat id -> (instance entry, subgraph definition).
        self._instances: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        definitions = ui_graph.get("definitions") or {}
        subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
        self.subgraphs: dict[str, Mapping[str, Any]] = {
            s["id"]: s
            for s in subgraphs or []
            if isinstance(s, Mapping) and isinstance(s.get("id"), str)
        }
        extra = ui_graph.get("extra") or {}
        group_nodes = extra.get("groupNodes") if isinstance(extra, Mapping) else None
        self.group_node_types = {f"workflow>{name}" for name in group_nodes or {}} | {
            f"workflow/{name}" for name in group_nodes or {}
        }
        self._add_scope(ui_graph, scope="", depth=0)

    # -- flattening ---------------------------------------------------------------------------

    def _add_scope(self, graph: Mapping[str, Any], scope: str, depth: int) -> None:
        where = f"subgraph instance {scope}: " if scope else ""
        prefix = f"{scope}:" if scope else ""
        raw_links = _parse_links(graph.get("links"), self.problems, where)
        instances: list[tuple[str, Mapping[str, Any]]] = []
        for raw in graph.get("nodes") or []:
            if (
                not isinstance(raw, Mapping)
                or "id" not in raw
                or not isinstance(raw.get("type"), str)
            ):
                self.problems.append(
                    f"{where}malformed node entry (needs 'id' and 'type'): {raw!r}"[:200]
                )
                continue
            node_id = f"{prefix}{raw['id']}"
            node = _Node(node_id, raw["type"], _mode(raw), raw)
            for slot in raw.get("inputs") or []:
                if not isinstance(slot, Mapping):
                    continue
                widget = slot.get("widget")
                name = widget.get("name") if isinstance(widget, Mapping) else None
                name = str(name or slot.get("name"))
                link = slot.get("link")
                node.inputs.append(
                    (name, slot.get("type"), (scope, link) if link is not None else None)
                )
            self.nodes[node_id] = node
            if raw["type"] in self.subgraphs and node.mode not in (MODE_MUTED, MODE_BYPASSED):
                instances.append((node_id, raw))
        for link_id, (origin, origin_slot, _target, _tslot, link_type) in raw_links.items():
            if origin == SUBGRAPH_INPUT_NODE and scope:
                self.links[(scope, link_id)] = self._subgraph_input_link(
                    scope, origin_slot, link_type
                )
            else:
                self.links[(scope, link_id)] = _Link(
                    f"{prefix}{origin}",
                    origin_slot if isinstance(origin_slot, int) else 0,
                    link_type,
                )
        for node_id, raw in instances:
            if depth >= MAX_SUBGRAPH_DEPTH:
                self.problems.append(f"node {node_id}: subgraphs nested too deep (a cycle?)")
                continue
            definition = self.subgraphs[raw["type"]]
            del self.nodes[node_id]  # the instance is replaced by what it contains
            self._instances[node_id] = (raw, definition)
            self._add_scope(definition, scope=node_id, depth=depth + 1)

    def _subgraph_input_link(self, scope: str, slot: Any, link_type: Any) -> _Link:
        """An inner link from the subgraph's input node: the instance's outer link."""
        instance = self._instances[scope][0]
        definition = self.subgraphs[instance["type"]]
        declared = definition.get("inputs") or []
        name = (
            declared[slot].get("name")
            if isinstance(slot, int) and 0 <= slot < len(declared)
            else None
        )
        outer_slots = [s for s in instance.get("inputs") or [] if isinstance(s, Mapping)]
        match = next((s for s in outer_slots if s.get("name") == name), None)
        if match is None and isinstance(slot, int) and slot < len(outer_slots):
            match = outer_slots[slot]
        outer_link = match.get("link") if match else None
        parent = scope.rpartition(":")[0] if ":" in scope else ""
        if outer_link is None:
            return _Link(None, 0, link_type, unconnected=True)
        return _Link(None, 0, link_type, alias=(parent, outer_link))

    def _output_of_instance(self, instance_id: str, slot: int) -> LinkKey | None:
        """The inner link feeding output ``slot`` of a subgraph instance."""
        definition = self._instances[instance_id][1]
        for link_id, link in _parse_links(definition.get("links"), [], "").items():
            if link[2] == SUBGRAPH_OUTPUT_NODE and link[3] == slot:
                return (instance_id, link_id)
        return None

    # -- checks -------------------------------------------------------------------------------

    def describe(self, node: _Node) -> str:
        return f"node {node.id} ({node.type})"

    def check_types(self) -> None:
        for node_id in sorted(self.nodes, key=node_sort_key):
            node = self.nodes[node_id]
            if node.type in VIRTUAL_TYPES or node.mode in (MODE_MUTED, MODE_BYPASSED):
                continue  # never submitted, so the server need not know them
            if node.type in self.group_node_types:
                self.problems.append(
                    f"{self.describe(node)}: legacy group nodes are not supported; convert the "
                    "group node to a subgraph (or ungroup it) in the editor and save again"
                )
            elif node.type not in self.catalogue:
                self.problems.append(
                    f"{self.describe(node)}: node type {node.type!r} is unknown to the server's "
                    "/object_info (custom node not installed?)"
                )

    def missing_node_types(self) -> list[str]:
        return sorted(
            {
                n.type
                for n in self.nodes.values()
                if n.type not in VIRTUAL_TYPES
                and n.mode not in (MODE_MUTED, MODE_BYPASSED)
                and n.type not in self.catalogue
            }
        )

    # -- link resolution ----------------------------------------------------------------------

    def resolve(self, key: LinkKey, target: _Node, input_name: str, input_type: Any):
        """Follow a link to ("link", [id, slot]) or ("value", v), or None when it feeds nothing."""
        seen: set[LinkKey] = set()
        while True:
            if key in seen:
                self.problems.append(f"{self.describe(target)} input {input_name!r}: link loop")
                return None
            seen.add(key)
            link = self.links.get(key)
            if link is None:
                self.problems.append(
                    f"{self.describe(target)} input {input_name!r}: "
                    f"link {key[1]} is not in {'its subgraph' if key[0] else 'the workflow'}'s "
                    "'links' (dangling link)"
                )
                return None
            if link.unconnected:
                return None  # the inner widget keeps its own value
            if link.alias is not None:
                key = link.alias
                continue
            origin_id, origin_slot = link.origin, link.slot
            assert origin_id is not None
            if origin_id in self._instances:  # a subgraph instance's output
                inner = self._output_of_instance(origin_id, origin_slot)
                if inner is None:
                    return None
                key = inner
                continue
            origin = self.nodes.get(origin_id)
            if origin is None:
                self.problems.append(
                    f"{self.describe(target)} input {input_name!r}: link {key[1]} comes from "
                    f"node {origin_id}, which is not in the workflow (dangling link)"
                )
                return None
            if origin.type in REROUTE_TYPES:
                upstream = origin.inputs[0][2] if origin.inputs else None
                if upstream is None:
                    return None
                key = upstream
                continue
            if origin.type == PRIMITIVE_TYPE:
                values = origin.raw.get("widgets_values")
                return ("value", values[0]) if isinstance(values, list) and values else None
            if origin.type in NOTE_TYPES or origin.mode == MODE_MUTED:
                return None
            if origin.mode == MODE_BYPASSED:
                # As the editor does: the bypassed node's input at the same slot if its type
                # matches, else its first input of the same type.
                candidates = [origin_slot, *range(len(origin.inputs))]
                match = next(
                    (
                        origin.inputs[i]
                        for i in candidates
                        if 0 <= i < len(origin.inputs)
                        and origin.inputs[i][2] is not None
                        and _same_type(origin.inputs[i][1], input_type or link.type)
                    ),
                    None,
                )
                if match is None:
                    return None
                key = match[2]  # type: ignore[assignment]
                continue
            return ("link", [origin_id, origin_slot])

    # -- conversion ---------------------------------------------------------------------------

    def convert(self) -> ApiGraph:
        self.check_types()
        if self.problems:
            raise UIImportError(self.problems, missing_node_types=self.missing_node_types())
        api: ApiGraph = {}
        for node_id in sorted(self.nodes, key=node_sort_key):
            node = self.nodes[node_id]
            if node.type in VIRTUAL_TYPES or node.mode in (MODE_MUTED, MODE_BYPASSED):
                continue
            node_def = self.catalogue.get(node.type)
            assert node_def is not None
            inputs = _widget_inputs(node.raw, node_def, self.notes, self.describe(node))
            for name, slot_type, key in node.inputs:
                if key is None:
                    continue
                resolved = self.resolve(key, node, name, slot_type)
                if resolved is None:
                    continue  # fed by a muted node: the input is left out, as the editor does
                inputs[name] = resolved[1]
            title = node.raw.get("title")
            api[node_id] = {
                "class_type": node.type,
                "inputs": inputs,
                "_meta": {"title": title if isinstance(title, str) else node_def.display_name},
            }
        self.check_cycles(api)
        if self.problems:
            raise UIImportError(self.problems)
        return api

    def check_cycles(self, api: ApiGraph) -> None:
        """A graph whose links run in a circle can never execute: name a node on the cycle."""
        state: dict[str, int] = {}
        for start in sorted(api, key=node_sort_key):
            if start in state:
                continue
            stack: list[tuple[str, list[str]]] = [(start, _link_sources(api, start))]
            state[start] = 1
            while stack:
                node_id, pending = stack[-1]
                if not pending:
                    state[node_id] = 2
                    stack.pop()
                    continue
                source = pending.pop()
                if source not in api:
                    continue
                if state.get(source) == 1:
                    node = api[node_id]
                    self.problems.append(
                        f"node {node_id} ({node['class_type']}): its inputs form a cycle through "
                        f"node {source} ({api[source]['class_type']})"
                    )
                    return
                if source not in state:
                    state[source] = 1
                    stack.append((source, _link_sources(api, source)))


def _link_sources(api: ApiGraph, node_id: str) -> list[str]:
    from workflows.graph import is_link

    return [str(v[0]) for v in api[node_id]["inputs"].values() if is_link(v)]


def _same_type(a: Any, b: Any) -> bool:
    if a is None or b is None or a == "*" or b == "*":
        return True
    return str(a) == str(b)


def ui_to_api(
    ui_graph: Mapping[str, Any],
    object_info: Mapping[str, Any] | Catalogue,
    *,
    notes: list[str] | None = None,
) -> ApiGraph:
    """API-format graph from an editor-saved workflow, naming widget values via ``object_info``.

    Raises ``UIImportError`` listing every node whose type the server does not know (by node
    id and type; ``missing_node_types`` holds them), every broken link and any cycle.
    ``notes`` (when given) receives what the conversion had to repair, e.g. widget values
    saved by another version of a node type.
    """
    if not isinstance(ui_graph, Mapping) or not isinstance(ui_graph.get("nodes"), list):
        raise UIImportError(["not an editor workflow: expected a JSON object with a 'nodes' list"])
    catalogue = object_info if isinstance(object_info, Catalogue) else Catalogue(object_info)
    converter = _Converter(ui_graph, catalogue)
    graph = converter.convert()
    if notes is not None:
        notes.extend(converter.notes)
    return graph
