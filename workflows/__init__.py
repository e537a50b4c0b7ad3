"""ComfyUI workflow templates and graphs: render, validate, extract, hash, import.

Public API::

    list_templates() -> list[str]
    load_template(name) -> WorkflowTemplate
    render_template(name, params, *, object_info=None) -> dict   # API-format graph
    validate_graph(graph, object_info, template=None, *, ignore=()) -> None
    find_problems(graph, object_info, template=None) -> list[GraphProblem]
    extract_params(graph) -> GraphParams
    canonical_json(graph) -> str;  graph_sha256(graph) -> str
    ui_to_api(ui_graph, object_info) -> dict
"""

from workflows.catalogue import Catalogue, custom_node_definitions, load_object_info
from workflows.errors import (
    GraphValidationError,
    ManifestError,
    TemplateParameterError,
    UIImportError,
    UnknownTemplateError,
    WorkflowError,
)
from workflows.extraction import (
    AnimateDiffUse,
    ControlNetUse,
    GraphParams,
    IPAdapterUse,
    LoraUse,
    SamplerUse,
    extract_params,
)
from workflows.graph import ApiGraph, canonical_json, graph_sha256, is_link
from workflows.manifest import ControlNetSpec, LoraSpec, ParameterSpec, TemplateManifest
from workflows.templating import (
    WorkflowTemplate,
    color_from_seed,
    list_templates,
    load_template,
    render_template,
)
from workflows.ui_import import ui_to_api
from workflows.validation import GraphProblem, find_problems, validate_graph

__all__ = [
    "AnimateDiffUse",
    "ApiGraph",
    "Catalogue",
    "ControlNetSpec",
    "ControlNetUse",
    "GraphParams",
    "GraphProblem",
    "GraphValidationError",
    "IPAdapterUse",
    "LoraSpec",
    "LoraUse",
    "ManifestError",
    "ParameterSpec",
    "SamplerUse",
    "TemplateManifest",
    "TemplateParameterError",
    "UIImportError",
    "UnknownTemplateError",
    "WorkflowError",
    "WorkflowTemplate",
    "canonical_json",
    "color_from_seed",
    "custom_node_definitions",
    "extract_params",
    "find_problems",
    "graph_sha256",
    "is_link",
    "list_templates",
    "load_object_info",
    "load_template",
    "render_template",
    "ui_to_api",
    "validate_graph",
]
