"""Workflow templates kept in ``workflows/templates/``: loading, checking and rendering.

Each template is an API-format graph ``<name>.json`` with a manifest ``<name>.manifest.yaml``
(or ``.manifest.json``). Rendering fills every binding (defaults included, so values saved in
the template never leak into a job), bypasses optional nodes left unset, and drops nodes that
no longer feed an output.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from workflows.catalogue import SEED_INPUT_NAMES, Catalogue
from workflows.errors import ManifestError, TemplateParameterError, UnknownTemplateError
from workflows.graph import PASSTHROUGH, ApiGraph, bypass_node, is_link, prune_unused
from workflows.manifest import (
    Binding,
    ControlNetSpec,
    LoraSpec,
    ParameterSpec,
    TemplateManifest,
    coerce_value,
)
from workflows.studio import studio_templates_dir
from workflows.validation import validate_graph

TEMPLATES_DIR = Path(__file__).parent / "templates"
_TEMPLATE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MANIFEST_SUFFIXES = (".manifest.yaml", ".manifest.yml", ".manifest.json")


@dataclass(frozen=True)
class WorkflowTemplate:
    """A loaded template: its manifest and a private copy of its API-format graph."""

    name: str
    manifest: TemplateManifest
    graph: ApiGraph
    graph_path: Path
    manifest_path: Path

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def parameters(self) -> dict[str, ParameterSpec]:
        return self.manifest.parameters


def _roots(directory: str | Path | None) -> list[Path]:
    """Where names are looked up: the given folder, else the studio's own folder (imported
    templates, which override shipped ones of the same name), then the shipped ones."""
    if directory is not None:
        return [Path(directory)]
    return [studio_templates_dir(), TEMPLATES_DIR]


def template_root(name: str, directory: str | Path | None = None) -> Path | None:
    """The folder the template ``name`` is loaded from, or None when no folder has it."""
    return next((root for root in _roots(directory) if name in _names_in(root)), None)


def template_origin(name: str) -> str:
    """``studio`` (imported) or ``shipped`` (in the package)."""
    return "shipped" if template_root(name) == TEMPLATES_DIR else "studio"


def list_templates(directory: str | Path | None = None) -> list[str]:
    """Names of the templates that have both a graph and a manifest, sorted (studio and
    shipped together unless ``directory`` names one folder)."""
    return sorted({name for root in _roots(directory) for name in _names_in(root)})


def _names_in(root: Path) -> list[str]:
    """The template names in one folder: a graph and a manifest of the same name. One
    listing of the folder (a render asks for its template several times per cut)."""
    try:
        files = set(os.listdir(root))
    except OSError:
        return []
    names = set()
    for file in files:
        for suffix in _MANIFEST_SUFFIXES:
            if file.endswith(suffix):
                name = file[: -len(suffix)]
                if _TEMPLATE_NAME.match(name) and f"{name}.json" in files:
                    names.add(name)
    return sorted(names)


def load_template(name: str, directory: str | Path | None = None) -> WorkflowTemplate:
    """Load and check one template, a copy of its own for the caller to change; raises
    UnknownTemplateError or ManifestError."""
    template = _checked(name, directory)
    return WorkflowTemplate(
        name=template.name,
        manifest=template.manifest.model_copy(deep=True),
        graph=copy.deepcopy(template.graph),
        graph_path=template.graph_path,
        manifest_path=template.manifest_path,
    )


def template_manifest(name: str, directory: str | Path | None = None) -> TemplateManifest:
    """The checked manifest of template ``name``, shared by every caller: to read (its
    parameters, version, outputs), never to change. A render reads it several times a cut,
    and a deep copy each time was a millisecond and more of the orchestrator's CPU per cut
    (docs/benchmarks.md); `load_template` gives a copy to change. Raises as it does."""
    return _checked(name, directory).manifest


def _checked(name: str, directory: str | Path | None) -> WorkflowTemplate:
    """The cached, checked template (shared: never change it)."""
    root = template_root(name, directory) if isinstance(name, str) else None
    if root is None:
        raise UnknownTemplateError(str(name), list_templates(directory))
    # An imported template may change on disk: a new stamp loads it afresh.
    stamps = tuple(
        p.stat().st_mtime_ns
        for p in (root / f"{name}{suffix}" for suffix in (".json", *_MANIFEST_SUFFIXES))
        if p.is_file()
    )
    return _load_checked(str(root.resolve()), name, stamps)


@lru_cache(maxsize=64)
def _load_checked(root_text: str, name: str, stamps: tuple[int, ...] = ()) -> WorkflowTemplate:
    root = Path(root_text)
    graph_path = root / f"{name}.json"
    manifest_path = next(
        root / f"{name}{s}" for s in _MANIFEST_SUFFIXES if (root / f"{name}{s}").is_file()
    )
    try:
        graph = json.loads(graph_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(name, f"cannot read graph: {exc}", path=str(graph_path)) from exc
    try:
        text = manifest_path.read_text(encoding="utf-8")
        raw = json.loads(text) if manifest_path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(name, f"cannot read manifest: {exc}", path=str(manifest_path)) from exc
    try:
        manifest = TemplateManifest.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ManifestError(name, f"invalid manifest: {details}", path=str(manifest_path)) from exc
    template = WorkflowTemplate(name, manifest, graph, graph_path, manifest_path)
    _check_template(template)
    return template


def _check_template(template: WorkflowTemplate) -> None:
    """The manifest must match its graph; every seed must be bound (the API has no randomize)."""
    name, manifest, graph = template.name, template.manifest, template.graph
    path = str(template.manifest_path)

    def fail(message: str) -> NoReturn:
        raise ManifestError(name, message, path=path)

    if manifest.name != name:
        fail(f"manifest name {manifest.name!r} does not match the file name")
    if not isinstance(graph, dict) or not graph:
        fail("graph must be a non-empty JSON object of nodes")
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            fail(f"graph node {node_id} must have a string class_type")
        if not isinstance(node.get("inputs"), dict):
            fail(f"graph node {node_id} ({node['class_type']}) must have an inputs object")
    for node_id in manifest.output_nodes:
        if node_id not in graph:
            fail(f"output node {node_id} is not in the graph")

    bound: dict[tuple[str, str], str] = {}
    for pname, spec in manifest.parameters.items():
        where = f"parameter {pname!r}"
        for binding in spec.bind:
            node = graph.get(binding.node)
            if node is None:
                fail(f"{where} binds node {binding.node}, which is not in the graph")
            class_type = node["class_type"]
            if spec.type == "loras":
                if "lora_name" not in node["inputs"] or class_type not in PASSTHROUGH:
                    fail(f"{where}: node {binding.node} ({class_type}) is not a LoRA loader slot")
                continue
            if spec.type == "controlnet":
                _check_controlnet_node(graph, binding.node, fail, where)
                continue
            assert binding.input is not None
            if binding.input not in node["inputs"]:
                fail(
                    f"{where} binds input {binding.input!r} of node {binding.node} "
                    f"({class_type}), which the template does not set"
                )
            if is_link(node["inputs"][binding.input]):
                fail(
                    f"{where} binds input {binding.input!r} of node {binding.node}, which is a link"
                )
            key = (binding.node, binding.input)
            if key in bound and bound[key] != pname:
                fail(
                    f"node {binding.node} input {binding.input!r} is bound by both {bound[key]!r} "
                    f"and {pname!r}"
                )
            bound[key] = pname
        for node_id in spec.when_unset:
            node = graph.get(node_id)
            if node is None:
                fail(f"{where}: when_unset names node {node_id}, which is not in the graph")
            if node["class_type"] not in PASSTHROUGH:
                fail(f"{where}: node {node_id} ({node['class_type']}) cannot be bypassed")
        if not spec.required and spec.default is not None:
            try:
                coerce_value(spec, spec.default)
            except ValueError as exc:
                fail(f"{where}: default {spec.default!r} is invalid: {exc}")
    for node_id, node in graph.items():
        for input_name, value in node["inputs"].items():
            unbound_seed = input_name in SEED_INPUT_NAMES and not is_link(value)
            if unbound_seed and (node_id, input_name) not in bound:
                fail(
                    f"node {node_id} ({node['class_type']}) input {input_name!r} is not bound "
                    "to a parameter; every seed must be set when rendering"
                )


def _check_controlnet_node(
    graph: ApiGraph, node_id: str, fail: Callable[[str], NoReturn], where: str
) -> None:
    node = graph[node_id]
    inputs = node["inputs"]
    if node["class_type"] not in PASSTHROUGH or not is_link(inputs.get("control_net")):
        fail(f"{where}: node {node_id} ({node['class_type']}) is not a ControlNet apply node")
    loader = graph.get(str(inputs["control_net"][0]), {})
    if "control_net_name" not in loader.get("inputs", {}):
        fail(f"{where}: node {node_id}'s control_net does not come from a ControlNet loader")
    image = (
        graph.get(str(inputs.get("image", [None])[0]), {}) if is_link(inputs.get("image")) else {}
    )
    if "image" not in image.get("inputs", {}) or is_link(image["inputs"]["image"]):
        fail(f"{where}: node {node_id}'s image does not come from a LoadImage node")


def color_from_seed(seed: int) -> int:
    """A 24-bit RGB colour that follows the seed (so model-free renders differ by seed)."""
    return int.from_bytes(hashlib.sha256(str(seed).encode("ascii")).digest()[:3], "big")


def _bound_value(value: Any, binding: Binding) -> Any:
    if binding.transform == "color_from_seed":
        return color_from_seed(value)
    if binding.format is not None:
        # replace, not str.format: prompts and formats may hold literal braces.
        return binding.format.replace("{value}", value)
    return value


def _apply_lora(graph: ApiGraph, node_id: str, lora: LoraSpec) -> None:
    inputs = graph[node_id]["inputs"]
    inputs["lora_name"] = lora.name
    inputs["strength_model"] = lora.strength_model
    if "strength_clip" in inputs:
        inputs["strength_clip"] = lora.strength_clip


def _apply_controlnet(graph: ApiGraph, node_id: str, spec: ControlNetSpec) -> None:
    inputs = graph[node_id]["inputs"]
    inputs["strength"] = spec.strength
    for key in ("start_percent", "end_percent"):
        if key in inputs:
            inputs[key] = getattr(spec, key)
    graph[str(inputs["control_net"][0])]["inputs"]["control_net_name"] = spec.name
    graph[str(inputs["image"][0])]["inputs"]["image"] = spec.image


def _resolve_values(template: WorkflowTemplate, params: Mapping[str, Any]) -> dict[str, Any]:
    name, specs = template.name, template.parameters
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise TemplateParameterError(
            name, unknown[0], f"unknown parameter; {name!r} takes: {', '.join(specs)}"
        )
    values: dict[str, Any] = {}
    for pname, spec in specs.items():
        raw = params.get(pname, spec.default)
        if raw is None or (spec.type == "loras" and raw == []):
            if spec.required:
                raise TemplateParameterError(
                    name, pname, f"is required ({spec.type}: {spec.description})"
                )
            values[pname] = [] if spec.type == "loras" else None
            continue
        try:
            values[pname] = coerce_value(spec, raw)
        except ValueError as exc:
            raise TemplateParameterError(name, pname, str(exc)) from None
    return values


def render_template(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    object_info: Mapping[str, Any] | Catalogue | None = None,
    directory: str | Path | None = None,
) -> ApiGraph:
    """Fill a template's bindings with ``params`` (defaults for the rest) into an API graph.

    Seeds are required parameters and are written into every input bound to them. With
    ``object_info`` the result is also validated against that server's catalogue
    (raising ``GraphValidationError``) before it is returned.
    """
    template = _checked(name, directory)
    if params is not None and not isinstance(params, Mapping):
        raise TemplateParameterError(name, "*", f"parameters must be a mapping, got {params!r}")
    values = _resolve_values(template, params or {})
    graph = copy.deepcopy(template.graph)  # the cached template's own is shared
    to_bypass: list[str] = []
    for pname, spec in template.parameters.items():
        value = values[pname]
        if spec.type == "loras":
            for index, binding in enumerate(spec.bind):
                if index < len(value):
                    _apply_lora(graph, binding.node, value[index])
                else:
                    to_bypass.append(binding.node)
            continue
        if value is None:
            to_bypass.extend(spec.when_unset)
            if spec.type == "controlnet":
                to_bypass.append(spec.bind[0].node)
            continue
        if spec.type == "controlnet":
            _apply_controlnet(graph, spec.bind[0].node, value)
            continue
        for binding in spec.bind:
            assert binding.input is not None
            graph[binding.node]["inputs"][binding.input] = _bound_value(value, binding)
    for node_id in dict.fromkeys(to_bypass):
        if node_id in graph:
            bypass_node(graph, node_id, PASSTHROUGH[graph[node_id]["class_type"]])
    prune_unused(graph, set(template.manifest.output_nodes))
    if object_info is not None:
        validate_graph(graph, object_info, template=name)
    return graph


def rebind_parameter(name: str, graph: ApiGraph, parameter: str, value: Any) -> ApiGraph:
    """A copy of `graph`, rendered from template `name`, with one plain parameter (str, int,
    float) written anew wherever the template binds it: for what is known only once the
    rest is rendered (the output prefix, named after the render's prompt id)."""
    spec = template_manifest(name).parameters.get(parameter)
    if spec is None or spec.type in ("loras", "controlnet"):
        raise TemplateParameterError(name, parameter, "is not a plain parameter of the template")
    try:
        coerced = coerce_value(spec, value)
    except ValueError as exc:
        raise TemplateParameterError(name, parameter, str(exc)) from None
    rebound = copy.deepcopy(graph)
    for binding in spec.bind:
        assert binding.input is not None
        rebound[binding.node]["inputs"][binding.input] = _bound_value(coerced, binding)
    return rebound
