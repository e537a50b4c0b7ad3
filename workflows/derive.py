"""A manifest derived from an imported API graph: the inputs the pipeline sets, bound by name.

Bound: every ``seed``/``noise_seed`` (one ``seed`` parameter), the prompt texts (traced from
each sampler's ``positive``/``negative`` back through conditioning nodes to the text
encoders), checkpoint or UNet, size, batch or frame count, fps, steps, cfg, sampler,
scheduler, denoise, LoRA loaders (``loras``), ControlNet apply nodes, reference images
(``LoadImage`` feeding IPAdapter/FaceID) and the output nodes. Everything else stays fixed
in the graph, and the derivation says what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.catalogue import SEED_INPUT_NAMES, Catalogue
from workflows.extraction import TEXT_KEYS
from workflows.graph import PASSTHROUGH, ApiGraph, is_link, sorted_node_ids

SAMPLER_VALUES = {  # input -> parameter, on sampler-like nodes
    "steps": "steps",
    "cfg": "cfg",
    "sampler_name": "sampler",
    "scheduler": "scheduler",
    "denoise": "denoise",
}
CHECKPOINT_INPUTS = ("ckpt_name", "unet_name")
SIZE_INPUTS = {"width": "width", "height": "height"}
FRAME_INPUTS = ("video_frames", "length", "frames", "batch_size", "frame_count")
FPS_INPUTS = ("fps", "frame_rate")
OUTPUT_CLASSES = frozenset(
    {"SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM",
     "SaveVideo", "VHS_VideoCombine"}
)  # fmt: skip
VIDEO_HINTS = ("ADE_", "SVD", "Video", "AnimateDiff", "WEBM", "Animated")
IDENTITY_HINTS = ("IPAdapter", "FaceID", "InstantID", "PuLID")
SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "CFGGuider", "DualCFGGuider")


@dataclass
class Derived:
    manifest: dict[str, Any]
    bound: list[tuple[str, str, str]] = field(default_factory=list)  # (param, node, input)
    fixed: list[tuple[str, str, Any]] = field(default_factory=list)  # (node, input, value)


class _Deriver:
    def __init__(self, graph: ApiGraph, catalogue: Catalogue | None) -> None:
        self.graph = graph
        self.catalogue = catalogue
        self.params: dict[str, dict[str, Any]] = {}
        self.taken: set[tuple[str, str]] = set()

    def cls(self, node_id: str) -> str:
        return str(self.graph[node_id]["class_type"])

    def inputs(self, node_id: str) -> dict[str, Any]:
        return self.graph[node_id]["inputs"]

    def spec_options(self, node_id: str, name: str) -> Mapping[str, Any]:
        node_def = self.catalogue.get(self.cls(node_id)) if self.catalogue else None
        spec = node_def.inputs.get(name) if node_def else None
        return spec.options if spec else {}

    def bind(self, pname: str, ptype: str, node_id: str, name: str, **extra: Any) -> None:
        value = self.inputs(node_id).get(name)
        if (node_id, name) in self.taken or is_link(value) or value is None:
            return
        self.taken.add((node_id, name))
        param = self.params.get(pname)
        if param is None:
            param = {"type": ptype, "description": extra.pop("description"), "bind": []}
            if extra.pop("required", False):
                param["required"] = True
            else:
                param["default"] = value
            options = self.spec_options(node_id, name)
            if ptype in ("int", "float"):
                for key in ("min", "max"):
                    if isinstance(options.get(key), int | float):
                        param[key] = options[key]
            self.params[pname] = param
        param["bind"].append({"node": node_id, "input": name})

    def free_name(self, base: str, ptype: str) -> str:
        """``base`` unless taken by a parameter of another type; else base_2, base_3..."""
        name, n = base, 1
        while name in self.params and self.params[name]["type"] != ptype:
            n += 1
            name = f"{base}_{n}"
        return name

    # -- tracing ----------------------------------------------------------------------------

    def encoders(self, value: Any, seen: set[str]) -> list[tuple[str, str]]:
        """(node, text input) of the text encoders feeding a conditioning link."""
        if not is_link(value) or str(value[0]) not in self.graph:
            return []
        node_id, slot = str(value[0]), value[1]
        if node_id in seen:
            return []
        seen.add(node_id)
        inputs = self.inputs(node_id)
        texts = [(node_id, k) for k in TEXT_KEYS if isinstance(inputs.get(k), str)]
        if texts:
            return texts
        if is_link(inputs.get("positive")) and is_link(inputs.get("negative")):
            key = {0: "positive", 1: "negative"}.get(slot)  # ControlNetApplyAdvanced & co.
            return self.encoders(inputs[key], seen) if key else []
        found: list[tuple[str, str]] = []
        for key, item in inputs.items():
            if is_link(item) and key.startswith(("cond", "positive", "conditioning")):
                found += self.encoders(item, seen)
        return found

    def feeds(self, start: str, hints: tuple[str, ...], depth: int = 4) -> bool:
        """Whether ``start``'s output reaches a node whose class has one of ``hints``."""
        frontier = {start}
        for _ in range(depth):
            nxt = {
                nid
                for nid, node in self.graph.items()
                for v in node["inputs"].values()
                if is_link(v) and str(v[0]) in frontier
            }
            if any(any(h in self.cls(n) for h in hints) for n in nxt):
                return True
            frontier = nxt
        return False

    # -- derivation -------------------------------------------------------------------------

    def derive(self) -> None:
        ids = sorted_node_ids(self.graph)
        for nid in ids:
            for name in SEED_INPUT_NAMES:
                self.bind("seed", "int", nid, name, description="Sampler seed.", required=True)
        samplers = [
            nid
            for nid in ids
            if self.cls(nid) in SAMPLER_CLASSES
            or ("positive" in self.inputs(nid) and "steps" in self.inputs(nid))
        ]
        for nid in samplers:
            for role in ("positive", "negative"):
                for enc, key in self.encoders(self.inputs(nid).get(role), set()):
                    self.bind(role, "str", enc, key, description=f"{role.capitalize()} prompt.")
        for nid in ids:
            inputs = self.inputs(nid)
            for key, pname in SAMPLER_VALUES.items():
                if key in inputs:
                    kind = (
                        "str"
                        if key in ("sampler_name", "scheduler")
                        else ("int" if key == "steps" else "float")
                    )
                    self.bind(pname, kind, nid, key, description=f"Sampler {key}.")
            for key in CHECKPOINT_INPUTS:
                self.bind("checkpoint", "str", nid, key, description="Checkpoint or UNet file.")
            if "width" in inputs and "height" in inputs:
                for key, pname in SIZE_INPUTS.items():
                    self.bind(pname, "int", nid, key, description=f"Image {key} in pixels.")
                for key in FRAME_INPUTS:
                    self.bind("frames", "int", nid, key, description="Frames (batch) per render.")
            elif self.cls(nid) == "SVD_img2vid_Conditioning":
                self.bind("frames", "int", nid, "video_frames", description="Video frames.")
            for key in FPS_INPUTS:
                self.bind("fps", "float" if isinstance(inputs.get(key), float) else "int",
                          nid, key, description="Frames per second.")  # fmt: skip
        self.derive_loras(ids)
        self.derive_controlnets(ids)
        for nid in ids:
            if self.cls(nid) == "LoadImage" and (nid, "image") not in self.taken:
                if self.feeds(nid, IDENTITY_HINTS):
                    pname = "reference_image"
                    description = "Reference image (identity) in the server's input folder."
                else:
                    pname = "init_image"
                    description = "Input image in the server's input folder."
                self.bind(self.free_name(pname, "image"), "image", nid, "image",
                          description=description)  # fmt: skip

    def derive_loras(self, ids: list[str]) -> None:
        slots = [
            nid
            for nid in ids
            if self.cls(nid) in PASSTHROUGH and isinstance(self.inputs(nid).get("lora_name"), str)
        ]
        if not slots:
            return
        default = []
        for nid in slots:
            inputs = self.inputs(nid)
            lora = {
                "name": inputs["lora_name"],
                "strength_model": inputs.get("strength_model", 1.0),
            }
            if "strength_clip" in inputs:
                lora["strength_clip"] = inputs["strength_clip"]
            default.append(lora)
            self.taken.update((nid, k) for k in ("lora_name", "strength_model", "strength_clip"))
        self.params["loras"] = {
            "type": "loras",
            "description": "LoRAs filling the LoRA loader slots; unused slots are bypassed.",
            "default": default,
            "bind": [{"node": nid} for nid in slots],
        }

    def derive_controlnets(self, ids: list[str]) -> None:
        n = 0
        for nid in ids:
            inputs = self.inputs(nid)
            if self.cls(nid) not in PASSTHROUGH or not is_link(inputs.get("control_net")):
                continue
            loader = self.graph.get(str(inputs["control_net"][0]), {}).get("inputs", {})
            image_src = inputs.get("image")
            image_node = str(image_src[0]) if is_link(image_src) else None
            image = self.graph.get(image_node, {}).get("inputs", {}) if image_node else {}
            if not isinstance(loader.get("control_net_name"), str) or not isinstance(
                image.get("image"), str
            ):
                continue
            n += 1
            default = {
                "name": loader["control_net_name"],
                "image": image["image"],
                "strength": inputs.get("strength", 1.0),
            }
            for key in ("start_percent", "end_percent"):
                if isinstance(inputs.get(key), int | float):
                    default[key] = inputs[key]
            self.params["controlnet" if n == 1 else f"controlnet_{n}"] = {
                "type": "controlnet",
                "description": "ControlNet {name, image, strength, start_percent, end_percent}.",
                "default": default,
                "bind": [{"node": nid}],
            }
            self.taken.update(
                [(nid, k) for k in ("strength", "start_percent", "end_percent")]
                + [(str(inputs["control_net"][0]), "control_net_name"), (image_node, "image")]
            )

    def output_nodes(self) -> list[str]:
        found = []
        for nid in sorted_node_ids(self.graph):
            node_def = self.catalogue.get(self.cls(nid)) if self.catalogue else None
            if (node_def.output_node if node_def else self.cls(nid) in OUTPUT_CLASSES) and (
                self.cls(nid) != "PreviewImage" or not found
            ):
                found.append(nid)
        return found

    def kind(self) -> str:
        frames = self.params.get("frames", {}).get("default")
        video = any(any(h in self.cls(n) for h in VIDEO_HINTS) for n in self.graph)
        return "animation" if video or (isinstance(frames, int) and frames > 1) else "image"


def derive_manifest(
    name: str,
    graph: ApiGraph,
    catalogue: Catalogue | None = None,
    *,
    phase: str | None = None,
    kind: str | None = None,
    description: str | None = None,
) -> Derived:
    """The manifest (as plain data) that binds ``graph``'s settable inputs; see the module doc."""
    deriver = _Deriver(graph, catalogue)
    deriver.derive()
    kind = kind or deriver.kind()
    manifest = {
        "name": name,
        "version": 1,
        "description": description or f"Imported workflow {name}.",
        "phase": phase or ("animation" if kind == "animation" else "generation"),
        "kind": kind,
        "output_nodes": deriver.output_nodes(),
        "parameters": deriver.params,
    }
    derived = Derived(manifest)
    for pname, param in deriver.params.items():
        for binding in param["bind"]:
            derived.bound.append((pname, binding["node"], binding.get("input") or "(node)"))
    for nid in sorted_node_ids(graph):
        for key, value in graph[nid]["inputs"].items():
            if not is_link(value) and (nid, key) not in deriver.taken:
                derived.fixed.append((nid, key, value))
    return derived
