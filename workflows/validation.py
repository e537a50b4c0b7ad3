"""Check an API-format graph against a server's ``/object_info`` before anything is queued.

Every problem is collected and reported together (one ``GraphValidationError``), each naming
the template, node id, class_type and input, so a bad graph is fixed in one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from workflows.catalogue import Catalogue, InputSpec
from workflows.errors import GraphValidationError
from workflows.graph import is_link, node_sort_key, sorted_node_ids

ProblemKind = Literal[
    "malformed_graph",
    "malformed_node",
    "unknown_node_type",
    "unknown_input",
    "missing_input",
    "invalid_type",
    "out_of_range",
    "not_in_list",
    "missing_model_file",
    "missing_input_file",
    "bad_link",
    "link_type_mismatch",
    "cycle",
    "no_outputs",
]

# Combo inputs whose choices are model files in the server's models folders.
MODEL_INPUT_NAMES = frozenset(
    {
        "ckpt_name",
        "lora_name",
        "vae_name",
        "control_net_name",
        "clip_name",
        "clip_name1",
        "clip_name2",
        "clip_name3",
        "clip_name4",
        "unet_name",
        "model_name",
        "ipadapter_file",
        "style_model_name",
        "gligen_name",
        "hypernetwork_name",
        "photomaker_model_name",
        "upscale_model",
        "audio_encoder_name",
    }
)
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


class GraphProblem(BaseModel):
    """One thing wrong with a graph, located as precisely as possible."""

    model_config = ConfigDict(frozen=True)

    kind: ProblemKind
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    template: str | None = None

    def __str__(self) -> str:
        where: list[str] = []
        if self.template:
            where.append(f"template {self.template!r}")
        if self.node_id is not None:
            where.append(f"node {self.node_id} ({self.class_type or '?'})")
        if self.input_name is not None:
            where.append(f"input {self.input_name!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


def _show(values: Collection[Any], limit: int = 12) -> str:
    items = [repr(v) for v in list(values)[:limit]]
    if len(values) > limit:
        items.append(f"... ({len(values) - limit} more)")
    return "[" + ", ".join(items) + "]"


def _is_model_input(name: str, value: Any) -> bool:
    return name in MODEL_INPUT_NAMES or (
        isinstance(value, str) and value.lower().endswith(MODEL_FILE_SUFFIXES)
    )


def _link_types_compatible(received: Any, expected: str) -> bool:
    # Combos (list-typed outputs) and wildcards are matched loosely, as the server does.
    if not isinstance(received, str) or expected in ("*", "COMBO") or received in ("*", "COMBO"):
        return True
    got = {t.strip() for t in received.split(",") if t.strip()}
    want = {t.strip() for t in expected.split(",") if t.strip()}
    return bool(got & want)


class _Checker:
    def __init__(self, graph: Mapping[str, Any], catalogue: Catalogue, template: str | None):
        self.graph = graph
        self.catalogue = catalogue
        self.template = template
        self.problems: list[GraphProblem] = []

    def add(self, kind: ProblemKind, message: str, **where: Any) -> None:
        self.problems.append(
            GraphProblem(kind=kind, message=message, template=self.template, **where)
        )

    def run(self) -> list[GraphProblem]:
        if not isinstance(self.graph, Mapping):
            self.add(
                "malformed_graph", f"graph must be a JSON object, got {type(self.graph).__name__}"
            )
            return self.problems
        if not self.graph:
            self.add("malformed_graph", "graph has no nodes")
            return self.problems
        # Unknown or malformed nodes may be the outputs: only claim "no outputs" when all known.
        unknown_types = False
        has_output = False
        for node_id in sorted_node_ids(self.graph):
            node = self.graph[node_id]
            if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
                unknown_types = True
                self.add(
                    "malformed_node",
                    "node must be an object with a string 'class_type'",
                    node_id=node_id,
                )
                continue
            class_type = node["class_type"]
            inputs = node.get("inputs", {})
            if not isinstance(inputs, Mapping):
                unknown_types = True
                self.add(
                    "malformed_node",
                    "'inputs' must be an object",
                    node_id=node_id,
                    class_type=class_type,
                )
                continue
            node_def = self.catalogue.get(class_type)
            if node_def is None:
                unknown_types = True
                self.add(
                    "unknown_node_type",
                    f"node type {class_type!r} is not installed on the server "
                    "(not in /object_info)",
                    node_id=node_id,
                    class_type=class_type,
                )
                # Its inputs cannot be checked, but its links still must point somewhere real.
                for name, value in inputs.items():
                    if isinstance(value, list):
                        self._check_link(node_id, class_type, name, value, None)
                continue
            has_output = has_output or node_def.output_node
            for spec in node_def.required:
                if spec.name not in inputs:
                    self.add(
                        "missing_input",
                        f"required input is missing (type {spec.type})",
                        node_id=node_id,
                        class_type=class_type,
                        input_name=spec.name,
                    )
            for name, value in inputs.items():
                spec = node_def.inputs.get(name)
                if spec is None:
                    if name not in node_def.hidden:
                        known = list(node_def.inputs)
                        self.add(
                            "unknown_input",
                            f"{class_type} has no input {name!r} (inputs: {_show(known, 30)})",
                            node_id=node_id,
                            class_type=class_type,
                            input_name=name,
                        )
                    continue
                self._check_value(node_id, class_type, spec, value)
        if not has_output and not unknown_types:
            self.add(
                "no_outputs",
                "graph has no output node (SaveImage, SaveAnimatedWEBP, PreviewImage, ...): "
                "the server would refuse it with prompt_no_outputs",
            )
        self._check_cycles()
        return self.problems

    def _check_value(self, node_id: str, class_type: str, spec: InputSpec, value: Any) -> None:
        where = {"node_id": node_id, "class_type": class_type, "input_name": spec.name}
        if spec.multiselect and isinstance(value, list) and not is_link(value):
            for item in value:
                self._check_combo(spec, item, where)
            return
        if isinstance(value, list):
            self._check_link(node_id, class_type, spec.name, value, spec)
            return
        if spec.type == "INT":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.add(
                    "invalid_type", f"expected INT, got {type(value).__name__} {value!r}", **where
                )
                return
            if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
                self.add("invalid_type", f"expected INT, got non-integer {value!r}", **where)
                return
            self._check_range(spec, value, where)
        elif spec.type == "FLOAT":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.add(
                    "invalid_type", f"expected FLOAT, got {type(value).__name__} {value!r}", **where
                )
                return
            if not math.isfinite(value):
                self.add("invalid_type", f"expected a finite FLOAT, got {value!r}", **where)
                return
            self._check_range(spec, value, where)
        elif spec.type == "STRING":
            if not isinstance(value, str):
                self.add(
                    "invalid_type",
                    f"expected STRING, got {type(value).__name__} {value!r}",
                    **where,
                )
        elif spec.type == "BOOLEAN":
            if not isinstance(value, bool):
                self.add(
                    "invalid_type",
                    f"expected BOOLEAN, got {type(value).__name__} {value!r}",
                    **where,
                )
        elif spec.type == "COMBO":
            self._check_combo(spec, value, where)
        else:
            self.add(
                "invalid_type",
                f"input of type {spec.type} must be linked to another node's output, "
                f"got the constant {value!r}",
                **where,
            )

    def _check_range(self, spec: InputSpec, value: float, where: dict[str, Any]) -> None:
        low, high = spec.options.get("min"), spec.options.get("max")
        if isinstance(low, int | float) and value < low:
            self.add(
                "out_of_range", f"value {value!r} is smaller than the minimum {low!r}", **where
            )
        if isinstance(high, int | float) and value > high:
            self.add(
                "out_of_range", f"value {value!r} is bigger than the maximum {high!r}", **where
            )

    def _check_combo(self, spec: InputSpec, value: Any, where: dict[str, Any]) -> None:
        if spec.choices is None or value in spec.choices:
            return
        offered = f"it offers {_show(spec.choices)}" if spec.choices else "it offers none"
        if spec.upload_flag is not None:
            self.add(
                "missing_input_file",
                f"input file {value!r} is not in the server's input folder ({offered}); "
                "upload it before submitting",
                **where,
            )
        elif _is_model_input(spec.name, value):
            self.add(
                "missing_model_file",
                f"model file {value!r} is not on the server ({offered})",
                **where,
            )
        else:
            self.add("not_in_list", f"value {value!r} is not in the list ({offered})", **where)

    def _check_link(
        self, node_id: str, class_type: str, name: str, value: list[Any], spec: InputSpec | None
    ) -> None:
        where = {"node_id": node_id, "class_type": class_type, "input_name": name}
        if not is_link(value):
            self.add(
                "bad_link",
                f"a list value is a link and must be [node_id, output_index], got {value!r}",
                **where,
            )
            return
        source_id, slot = str(value[0]), value[1]
        source = self.graph.get(source_id)
        if not isinstance(source, Mapping):
            self.add("bad_link", f"links to node {source_id!r}, which is not in the graph", **where)
            return
        source_def = self.catalogue.get(str(source.get("class_type")))
        if slot < 0:
            self.add(
                "bad_link", f"links to negative output index {slot} of node {source_id}", **where
            )
            return
        if source_def is None:
            return  # unknown source type is reported on its own node
        if slot >= len(source_def.outputs):
            self.add(
                "bad_link",
                f"links to output {slot} of node {source_id} ({source_def.class_type}), "
                f"which has {len(source_def.outputs)} output(s)",
                **where,
            )
            return
        received = source_def.outputs[slot]
        if spec is not None and not _link_types_compatible(received, spec.type):
            self.add(
                "link_type_mismatch",
                f"expects {spec.type} but is linked to output {slot} of node {source_id} "
                f"({source_def.class_type}), which gives {received}",
                **where,
            )

    def _check_cycles(self) -> None:
        edges: dict[str, list[str]] = {}
        for node_id, node in self.graph.items():
            inputs = node.get("inputs") if isinstance(node, Mapping) else None
            if isinstance(inputs, Mapping):
                edges[node_id] = [
                    str(v[0]) for v in inputs.values() if is_link(v) and str(v[0]) in self.graph
                ]
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        reported: set[str] = set()
        for start in sorted(edges, key=node_sort_key):
            if state.get(start):
                continue
            stack = [(start, iter(edges.get(start, ())))]
            state[start] = 1
            while stack:
                current, children = stack[-1]
                child = next(children, None)
                if child is None:
                    state[current] = 2
                    stack.pop()
                elif state.get(child) == 1 and child not in reported:
                    reported.add(child)
                    node = self.graph[child]
                    self.add(
                        "cycle",
                        "node depends on its own output through a cycle of links",
                        node_id=child,
                        class_type=node.get("class_type"),
                    )
                elif not state.get(child):
                    state[child] = 1
                    stack.append((child, iter(edges.get(child, ()))))


def find_problems(
    graph: Mapping[str, Any],
    object_info: Mapping[str, Any] | Catalogue,
    template: str | None = None,
) -> list[GraphProblem]:
    """Every problem in ``graph`` against the server's node catalogue (empty list: valid)."""
    catalogue = object_info if isinstance(object_info, Catalogue) else Catalogue(object_info)
    return _Checker(graph, catalogue, template).run()


def validate_graph(
    graph: Mapping[str, Any],
    object_info: Mapping[str, Any] | Catalogue,
    template: str | None = None,
    *,
    ignore: Collection[ProblemKind] = (),
) -> None:
    """Raise ``GraphValidationError`` listing every problem, unless the graph is valid.

    ``ignore`` skips kinds the caller handles itself, e.g. ``{"missing_input_file"}`` when
    reference images are uploaded after the catalogue was fetched.
    """
    problems = [p for p in find_problems(graph, object_info, template) if p.kind not in ignore]
    if problems:
        raise GraphValidationError(problems, template)
