"""API-format graphs: links, canonical form and hash, node bypass and pruning.

An API-format graph is ``{node_id: {"class_type": str, "inputs": {name: value}}}``; a value
that is a two-item list ``[source_node_id, output_index]`` is a link to another node's output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

ApiGraph = dict[str, dict[str, Any]]

# For bypassing a node: which input stands in for each output slot (the node's "pass-through").
PASSTHROUGH: dict[str, dict[int, str]] = {
    "LoraLoader": {0: "model", 1: "clip"},
    "LoraLoaderModelOnly": {0: "model"},
    "IPAdapter": {0: "model"},
    "IPAdapterAdvanced": {0: "model"},
    "IPAdapterFaceID": {0: "model"},
    "IPAdapterUnifiedLoader": {0: "model"},
    "IPAdapterUnifiedLoaderFaceID": {0: "model"},
    "ControlNetApply": {0: "conditioning"},
    "ControlNetApplyAdvanced": {0: "positive", 1: "negative"},
    "ControlNetApplySD3": {0: "positive", 1: "negative"},
}


def is_link(value: Any) -> bool:
    """True for ``[node_id, output_index]``: ComfyUI treats such a list as a link."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def node_sort_key(node_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then anything else by name (stable reports)."""
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def sorted_node_ids(graph: Mapping[str, Any]) -> list[str]:
    return sorted(graph, key=node_sort_key)


def iter_links(graph: Mapping[str, Any]) -> Iterator[tuple[str, str, str, int]]:
    """Yield ``(target_id, input_name, source_id, output_index)`` for every link."""
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            if is_link(value):
                yield node_id, name, str(value[0]), value[1]


def canonical_json(graph: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the same graph always gives the same string."""
    try:
        return json.dumps(
            graph, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:  # NaN/Infinity have no JSON form: ComfyUI would reject them too
        raise ValueError(f"graph cannot be written as canonical JSON: {exc}") from exc


def graph_sha256(graph: Any) -> str:
    """Hex sha256 of the canonical JSON (UTF-8 bytes) of the graph as submitted."""
    return hashlib.sha256(canonical_json(graph).encode("utf-8")).hexdigest()


def bypass_node(graph: ApiGraph, node_id: str, passthrough: Mapping[int, str]) -> None:
    """Remove a node, rewiring consumers of its output N to its input ``passthrough[N]``.

    A consumer of a slot with no pass-through (or whose pass-through input is unset) loses
    that input; validation then reports it rather than the graph silently changing meaning.
    """
    node = graph.pop(node_id)
    own_inputs = node.get("inputs", {})
    for other in graph.values():
        inputs = other.get("inputs", {})
        for name, value in list(inputs.items()):
            if not (is_link(value) and str(value[0]) == node_id):
                continue
            source_input = passthrough.get(value[1])
            replacement = own_inputs.get(source_input) if source_input else None
            if replacement is None:
                del inputs[name]
            else:
                inputs[name] = list(replacement) if isinstance(replacement, list) else replacement


def prune_unused(graph: ApiGraph, keep: set[str]) -> list[str]:
    """Drop nodes nobody consumes (except ``keep``, the output nodes), until none is left."""
    removed: list[str] = []
    while True:
        used = {source for _, _, source, _ in iter_links(graph)}
        dead = [nid for nid in graph if nid not in used and nid not in keep]
        if not dead:
            return removed
        for nid in dead:
            del graph[nid]
        removed.extend(dead)
