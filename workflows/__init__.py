"""ComfyUI workflow templates and graphs: render, validate, extract, hash, import.

Public API::

    list_templates() -> list[str]
    load_template(name) -> WorkflowTemplate       # a copy of its own, to change
    template_manifest(name) -> TemplateManifest   # shared, to read
    render_template(name, params, *, object_info=None) -> dict   # API-format graph
    validate_graph(graph, object_info, template=None, *, ignore=()) -> None
    find_problems(graph, object_info, template=None) -> list[GraphProblem]
    extract_params(graph) -> GraphParams
    canonical_json(graph) -> str;  graph_sha256(graph) -> str
    ui_to_api(ui_graph, object_info, *, notes=None) -> dict
    read_workflow(path) -> WorkflowSource          # UI/API JSON, PNG/WebP/clip metadata
    import_workflow(path, catalogue, ...) -> ImportResult   # into studio_templates_dir()
    derive_manifest(name, graph, catalogue) -> Derived
"""

from workflows.catalogue import Catalogue, custom_node_definitions, load_object_info
from workflows.derive import Derived, derive_manifest
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
from workflows.importing import ImportResult, import_workflow
from workflows.manifest import ControlNetSpec, LoraSpec, ParameterSpec, TemplateManifest
from workflows.sources import WorkflowSource, WorkflowSourceError, read_workflow
from workflows.studio import studio_templates_dir
from workflows.templating import (
    WorkflowTemplate,
    color_from_seed,
    list_templates,
    load_template,
    rebind_parameter,
    render_template,
    template_manifest,
    template_origin,
)
from workflows.ui_import import ui_to_api
from workflows.validation import GraphProblem, find_problems, validate_graph

__all__ = [
    "AnimateDiffUse",
    "ApiGraph",
    "Catalogue",
    "ControlNetSpec",
    "ControlNetUse",
    "Derived",
    "GraphParams",
    "GraphProblem",
    "GraphValidationError",
    "IPAdapterUse",
    "ImportResult",
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
    "WorkflowSource",
    "WorkflowSourceError",
    "WorkflowTemplate",
    "canonical_json",
    "color_from_seed",
    "custom_node_definitions",
    "derive_manifest",
    "extract_params",
    "find_problems",
    "graph_sha256",
    "import_workflow",
    "is_link",
    "list_templates",
    "load_object_info",
    "load_template",
    "read_workflow",
    "rebind_parameter",
    "render_template",
    "studio_templates_dir",
    "template_manifest",
    "template_origin",
    "ui_to_api",
    "validate_graph",
]
