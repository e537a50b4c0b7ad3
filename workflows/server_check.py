"""What a live server lacks for a template: node types (with the pack that provides them),
model files (folder and name), values its schema refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.catalogue import Catalogue, custom_node_definitions
from workflows.graph import ApiGraph
from workflows.validation import GraphProblem, find_problems

# Where ComfyUI keeps the files a loader input names (models/<folder>).
MODEL_FOLDERS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "ipadapter_file": "ipadapter",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "upscale_model": "upscale_models",
}
CLASS_MODEL_FOLDERS = {
    ("ADE_AnimateDiffLoaderGen1", "model_name"): "animatediff_models",
    ("ADE_LoadAnimateDiffModel", "model_name"): "animatediff_models",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
}
# Node-type prefixes of widely used packs, for types the studio's catalogue does not hold.
PACK_PREFIXES = {
    "ADE_": "ComfyUI-AnimateDiff-Evolved",
    "IPAdapter": "ComfyUI_IPAdapter_plus",
    "VHS_": "ComfyUI-VideoHelperSuite",
    "ACN_": "ComfyUI-Advanced-ControlNet",
    "KJ": "ComfyUI-KJNodes",
}


def pack_of(class_type: str) -> str | None:
    raw = custom_node_definitions().get(class_type)
    module = raw.get("python_module") if isinstance(raw, Mapping) else None
    if isinstance(module, str) and module.startswith("custom_nodes."):
        return module.split(".", 1)[1]
    return next((pack for p, pack in PACK_PREFIXES.items() if class_type.startswith(p)), None)


def model_folder(class_type: str, input_name: str) -> str | None:
    return CLASS_MODEL_FOLDERS.get((class_type, input_name)) or MODEL_FOLDERS.get(input_name)


def describe(problem: GraphProblem, graph: ApiGraph) -> str:
    """One line a studio engineer can act on."""
    if problem.kind == "unknown_node_type" and problem.class_type:
        pack = pack_of(problem.class_type)
        hint = f" (install {pack})" if pack else ""
        return f"node {problem.node_id}: node type {problem.class_type!r} is missing{hint}"
    if problem.kind == "missing_model_file" and problem.node_id and problem.input_name:
        value: Any = graph.get(problem.node_id, {}).get("inputs", {}).get(problem.input_name)
        folder = model_folder(problem.class_type or "", problem.input_name) or "?"
        return (
            f"node {problem.node_id} ({problem.class_type}) input {problem.input_name!r}: model "
            f"file missing: models/{folder}/{value}"
        )
    return str(problem)


def check_against(graph: ApiGraph, object_info: Mapping[str, Any] | Catalogue, template: str):
    """(problem, line) for everything the server would refuse, in graph order."""
    problems = find_problems(graph, object_info, template)
    return [(p, describe(p, graph)) for p in problems]
