"""Generation parameters read back from any API-format graph (templates or graphs users bring).

Extraction follows the graph the way ComfyUI executes it: the main sampler's positive and
negative links are walked back to the text encoders, its model link to the checkpoint, its
latent link to the size. Nodes it does not know (custom packs) are kept in the graph and
skipped here; values arriving through links (a seed from a primitive or a custom seed node,
a prompt from a text node) are followed to their constant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from workflows.graph import is_link, node_sort_key

SEED_KEYS = ("seed", "noise_seed")
TEXT_KEYS = (
    "text",
    "text_g",
    "text_l",
    "clip_l",
    "clip_g",
    "t5xxl",
    "prompt",
    "user_prompt",
    "bert",
    "mt5xl",
)
# Keys a value-holding node (primitive, custom seed/text node) most likely keeps its value in.
VALUE_KEYS = (
    "value",
    "seed",
    "noise_seed",
    "int",
    "float",
    "number",
    "string",
    "text",
    "prompt",
    "STRING",
    "INT",
    "FLOAT",
)
CHECKPOINT_KEYS = ("ckpt_name", "unet_name", "model_path")
LATENT_KEYS = ("latent_image", "samples", "latent", "pixels", "image", "images", "init_image")
FRAME_KEYS = ("video_frames", "length", "frames", "batch_size", "amount")
VIDEO_OUTPUTS = ("SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM", "CreateVideo")


class LoraUse(BaseModel):
    node_id: str
    class_type: str
    name: str
    strength_model: float | None = None
    strength_clip: float | None = None


class ControlNetUse(BaseModel):
    node_id: str
    class_type: str
    model: str | None = None
    strength: float | None = None
    start_percent: float | None = None
    end_percent: float | None = None
    image: str | None = None
    preprocessor: str | None = None


class IPAdapterUse(BaseModel):
    node_id: str
    class_type: str
    weight: float | None = None
    weight_type: str | None = None
    preset: str | None = None
    model: str | None = None
    start_at: float | None = None
    end_at: float | None = None
    image: str | None = None
    weight_faceidv2: float | None = None
    lora_strength: float | None = None
    clip_vision: str | None = None
    combine_embeds: str | None = None
    embeds_scaling: str | None = None


class AnimateDiffUse(BaseModel):
    node_id: str
    class_type: str
    motion_module: str
    beta_schedule: str | None = None
    context_length: int | None = None
    context_overlap: int | None = None
    closed_loop: bool | None = None


class SamplerUse(BaseModel):
    node_id: str
    class_type: str
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None
    positive: str | None = None
    negative: str | None = None


class GraphParams(BaseModel):
    """What a job stores about how an output was made, read from the graph as submitted."""

    seed: int | None = None
    seeds: dict[str, int] = Field(default_factory=dict)  # "node_id.input" -> seed
    checkpoint: str | None = None
    checkpoints: list[str] = Field(default_factory=list)
    vae: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    denoise: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    fps: float | None = None
    positive: str | None = None
    negative: str | None = None
    loras: list[LoraUse] = Field(default_factory=list)
    controlnets: list[ControlNetUse] = Field(default_factory=list)
    ipadapters: list[IPAdapterUse] = Field(default_factory=list)
    motion_module: str | None = None
    animatediff: list[AnimateDiffUse] = Field(default_factory=list)
    # Files read from the server's input folder (references, init frames, control images).
    input_images: list[str] = Field(default_factory=list)
    samplers: list[SamplerUse] = Field(default_factory=list)
    class_types: list[str] = Field(default_factory=list)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _Reader:
    def __init__(self, graph: Mapping[str, Any]) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        for node_id, node in graph.items():
            if (
                isinstance(node, Mapping)
                and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs", {}), Mapping)
            ):
                self.nodes[str(node_id)] = {
                    "class_type": node["class_type"],
                    "inputs": dict(node.get("inputs", {})),
                }
        self.order = sorted(self.nodes, key=node_sort_key)

    def class_type(self, node_id: str) -> str:
        return self.nodes[node_id]["class_type"]

    def inputs(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id]["inputs"]

    def source(self, value: Any) -> tuple[str, int] | None:
        if is_link(value) and str(value[0]) in self.nodes:
            return str(value[0]), value[1]
        return None

    def scalar(self, value: Any, depth: int = 0) -> Any:
        """The constant behind a value, following links into value-holding nodes."""
        src = self.source(value)
        if src is None:
            return None if is_link(value) else value
        if depth > 8:
            return None
        node_id = src[0]
        inputs = self.inputs(node_id)
        if self.class_type(node_id) == "StringConcatenate":
            a, b = (
                self.scalar(inputs.get("string_a"), depth + 1),
                self.scalar(inputs.get("string_b"), depth + 1),
            )
            sep = self.scalar(inputs.get("delimiter", ""), depth + 1) or ""
            if isinstance(a, str) and isinstance(b, str) and isinstance(sep, str):
                return f"{a}{sep}{b}"
        for key in VALUE_KEYS:
            if key in inputs:
                return self.scalar(inputs[key], depth + 1)
        constants = [v for v in inputs.values() if not isinstance(v, list | dict)]
        return constants[0] if len(constants) == 1 else None

    def get(self, node_id: str, key: str) -> Any:
        return self.scalar(self.inputs(node_id).get(key))

    def linked(self, node_id: str, key: str) -> str | None:
        src = self.source(self.inputs(node_id).get(key))
        return src[0] if src else None

    def upstream_file(
        self, value: Any, key: str = "image", depth: int = 0
    ) -> tuple[str | None, str | None]:
        """(file name, first processing node) behind an image-like link, e.g. LoadImage."""
        src = self.source(value)
        if src is None or depth > 6:
            return None, None
        node_id = src[0]
        name = _as_str(self.inputs(node_id).get(key))
        if name is not None and not is_link(self.inputs(node_id).get(key)):
            return name, None
        for next_key in ("image", "images", "pixels"):
            if next_key in self.inputs(node_id):
                found, _ = self.upstream_file(self.inputs(node_id)[next_key], key, depth + 1)
                if found is not None:
                    return found, self.class_type(node_id)
        return None, self.class_type(node_id)

    def texts(self, value: Any, visited: set[str] | None = None) -> list[str]:
        """Prompt texts feeding a conditioning link."""
        visited = set() if visited is None else visited
        src = self.source(value)
        if src is None:
            return []
        node_id, slot = src
        if node_id in visited:
            return []
        visited.add(node_id)
        inputs = self.inputs(node_id)
        if self.class_type(node_id) == "ConditioningZeroOut":
            return [""]  # an empty negative made by zeroing the positive
        found = [
            text
            for key in TEXT_KEYS
            if key in inputs and isinstance(text := self.scalar(inputs[key]), str)
        ]
        if found:
            return _dedupe(found)
        if is_link(inputs.get("positive")) and is_link(inputs.get("negative")):
            key = {0: "positive", 1: "negative"}.get(slot)
            return self.texts(inputs[key], visited) if key else []
        collected: list[str] = []
        for key, item in inputs.items():
            if is_link(item) and key.startswith(("cond", "positive")):
                collected += self.texts(item, visited)
        return _dedupe(collected)

    def prompt(self, value: Any) -> str | None:
        texts = self.texts(value)
        return "\n".join(texts) if texts else None


def _is_sampler(reader: _Reader, node_id: str) -> bool:
    class_type = reader.class_type(node_id)
    if class_type in ("SamplerCustom", "SamplerCustomAdvanced"):
        return True
    inputs = reader.inputs(node_id)
    return (
        "steps" in inputs
        and any(k in inputs for k in SEED_KEYS)
        and ("positive" in inputs or "sampler_name" in inputs)
    )


def _read_sampler(reader: _Reader, node_id: str) -> SamplerUse:
    class_type = reader.class_type(node_id)
    inputs = reader.inputs(node_id)
    use = SamplerUse(node_id=node_id, class_type=class_type)
    seed_key = next((k for k in SEED_KEYS if k in inputs), None)
    if seed_key:
        use.seed = _as_int(reader.get(node_id, seed_key))
    use.steps = _as_int(reader.get(node_id, "steps"))
    use.cfg = _as_float(reader.get(node_id, "cfg"))
    use.sampler = _as_str(reader.get(node_id, "sampler_name"))
    use.scheduler = _as_str(reader.get(node_id, "scheduler"))
    use.denoise = _as_float(reader.get(node_id, "denoise"))
    positive, negative = inputs.get("positive"), inputs.get("negative")
    if (noise := reader.linked(node_id, "noise")) is not None:
        use.seed = _as_int(reader.get(noise, "noise_seed"))
    if (guider := reader.linked(node_id, "guider")) is not None:
        guider_inputs = reader.inputs(guider)
        use.cfg = _as_float(reader.get(guider, "cfg"))
        if use.cfg is None:
            use.cfg = _as_float(reader.get(guider, "cfg_conds"))
        positive = guider_inputs.get("positive", guider_inputs.get("cond1"))
        positive = positive if positive is not None else guider_inputs.get("conditioning")
        negative = guider_inputs.get("negative")
    if (sampler := reader.linked(node_id, "sampler")) is not None:
        use.sampler = _as_str(reader.get(sampler, "sampler_name")) or reader.class_type(sampler)
    sigmas = reader.linked(node_id, "sigmas")
    for _ in range(8):  # SetFirstSigma, SplitSigmas, FlipSigmas... wrap the scheduler's sigmas
        upstream = reader.linked(sigmas, "sigmas") if sigmas is not None else None
        if upstream is None or "steps" in reader.inputs(sigmas):
            break
        sigmas = upstream
    if sigmas is not None:
        use.scheduler = _as_str(reader.get(sigmas, "scheduler")) or reader.class_type(sigmas)
        use.steps = _as_int(reader.get(sigmas, "steps"))
        use.denoise = _as_float(reader.get(sigmas, "denoise"))
    use.positive = reader.prompt(positive)
    use.negative = reader.prompt(negative)
    return use


def _model_source(reader: _Reader, node_id: str) -> str | None:
    """The node feeding a sampler's model (through a guider for custom samplers)."""
    guider = reader.linked(node_id, "guider")
    return reader.linked(guider or node_id, "model")


def _upstream(reader: _Reader, start: str | None) -> set[str]:
    seen: set[str] = set()
    stack = [start] if start else []
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack += [src[0] for v in reader.inputs(current).values() if (src := reader.source(v))]
    return seen


def _primary_sampler(reader: _Reader, samplers: list[str]) -> str | None:
    """The first pass: a sampler on a latent that no other sampler made.

    Samplers without a latent input (detailers, upscalers working on images) come after.
    """
    on_latents = [n for n in samplers if reader.linked(n, "latent_image") is not None]
    for node_id in on_latents:
        latent_from = _upstream(reader, reader.linked(node_id, "latent_image"))
        if not latent_from & set(samplers):
            return node_id
    return (on_latents or samplers or [None])[0]


def _checkpoint(reader: _Reader, start: str | None) -> str | None:
    seen: set[str] = set()
    current = start
    while current is not None and current not in seen:
        seen.add(current)
        for key in CHECKPOINT_KEYS:
            if isinstance(name := reader.get(current, key), str):
                return name
        current = reader.linked(current, "model")
    return None


def _size_node(reader: _Reader, start: str | None) -> str | None:
    seen: set[str] = set()
    current = start
    while current is not None and current not in seen:
        seen.add(current)
        if _as_int(reader.get(current, "width")) and _as_int(reader.get(current, "height")):
            return current
        current = next(
            (nid for key in LATENT_KEYS if (nid := reader.linked(current, key)) is not None), None
        )
    return None


def _fallback_size_node(reader: _Reader) -> str | None:
    """Without a sampler (e.g. a model-free graph): the first empty image/latent node."""
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        is_source = class_type.startswith(("Empty", "ADE_Empty"))
        is_source = is_source or class_type == "SVD_img2vid_Conditioning"
        has_size = _as_int(reader.get(node_id, "width")) and _as_int(reader.get(node_id, "height"))
        if is_source and has_size:
            return node_id
    return None


def _frames(reader: _Reader, node_id: str) -> int | None:
    for key in FRAME_KEYS:
        if (value := _as_int(reader.get(node_id, key))) is not None:
            return value
    return None


def _fps(reader: _Reader) -> float | None:
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        if class_type in VIDEO_OUTPUTS or class_type.startswith("VHS_"):
            for key in ("fps", "frame_rate"):
                if (value := _as_float(reader.get(node_id, key))) is not None:
                    return value
    for node_id in reader.order:
        if (value := _as_float(reader.get(node_id, "fps"))) is not None:
            return value
    return None


def _loras(reader: _Reader) -> list[LoraUse]:
    loras: list[LoraUse] = []
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        if class_type.startswith("ADE_"):
            continue  # motion LoRAs belong to AnimateDiff, not the image model
        inputs = reader.inputs(node_id)
        name = _as_str(reader.get(node_id, "lora_name"))
        if name is not None and name.lower() != "none":
            strength = reader.get(node_id, "strength_model")
            loras.append(
                LoraUse(
                    node_id=node_id,
                    class_type=class_type,
                    name=name,
                    strength_model=_as_float(
                        strength if strength is not None else reader.get(node_id, "strength")
                    ),
                    strength_clip=_as_float(reader.get(node_id, "strength_clip")),
                )
            )
        # rgthree's Power Lora Loader keeps each LoRA as {"on", "lora", "strength", ...}.
        for value in inputs.values():
            if not (isinstance(value, Mapping) and isinstance(value.get("lora"), str)):
                continue
            if value.get("on", True) and value["lora"].lower() != "none":
                strength = _as_float(value.get("strength"))
                clip = _as_float(value.get("strengthTwo"))
                loras.append(
                    LoraUse(
                        node_id=node_id,
                        class_type=class_type,
                        name=value["lora"],
                        strength_model=strength,
                        strength_clip=clip if clip is not None else strength,
                    )
                )
    return loras


def _controlnets(reader: _Reader) -> list[ControlNetUse]:
    uses: list[ControlNetUse] = []
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        lowered = class_type.lower()
        if "controlnet" not in lowered or "apply" not in lowered:
            continue
        inputs = reader.inputs(node_id)
        loader = reader.linked(node_id, "control_net")
        image, preprocessor = reader.upstream_file(inputs.get("image"))
        uses.append(
            ControlNetUse(
                node_id=node_id,
                class_type=class_type,
                model=_as_str(reader.get(loader, "control_net_name")) if loader else None,
                strength=_as_float(reader.get(node_id, "strength")),
                start_percent=_as_float(reader.get(node_id, "start_percent")),
                end_percent=_as_float(reader.get(node_id, "end_percent")),
                image=image,
                preprocessor=preprocessor,
            )
        )
    return uses


def _ipadapters(reader: _Reader) -> list[IPAdapterUse]:
    uses: list[IPAdapterUse] = []
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        inputs = reader.inputs(node_id)
        if not class_type.startswith("IPAdapter") or "weight" not in inputs:
            continue
        use = IPAdapterUse(
            node_id=node_id,
            class_type=class_type,
            weight=_as_float(reader.get(node_id, "weight")),
            weight_type=_as_str(reader.get(node_id, "weight_type")),
            start_at=_as_float(reader.get(node_id, "start_at")),
            end_at=_as_float(reader.get(node_id, "end_at")),
            weight_faceidv2=_as_float(reader.get(node_id, "weight_faceidv2")),
            combine_embeds=_as_str(reader.get(node_id, "combine_embeds")),
            embeds_scaling=_as_str(reader.get(node_id, "embeds_scaling")),
        )
        use.image, _ = reader.upstream_file(inputs.get("image"))
        if (loader := reader.linked(node_id, "ipadapter")) is not None:
            use.preset = _as_str(reader.get(loader, "preset"))
            use.model = _as_str(reader.get(loader, "ipadapter_file"))
            use.lora_strength = _as_float(reader.get(loader, "lora_strength"))
        if (vision := reader.linked(node_id, "clip_vision")) is not None:
            use.clip_vision = _as_str(reader.get(vision, "clip_name"))
        uses.append(use)
    return uses


def _animatediff(reader: _Reader) -> list[AnimateDiffUse]:
    context = next(
        (nid for nid in reader.order if "ContextOptions" in reader.class_type(nid)), None
    )
    evolved = next(
        (nid for nid in reader.order if reader.class_type(nid) == "ADE_UseEvolvedSampling"), None
    )
    uses: list[AnimateDiffUse] = []
    for node_id in reader.order:
        class_type = reader.class_type(node_id)
        if not class_type.startswith(("ADE_", "AnimateDiff")):
            continue
        motion_module = _as_str(reader.get(node_id, "model_name"))
        if motion_module is None:
            continue
        own_context = reader.linked(node_id, "context_options") or context
        beta = reader.get(node_id, "beta_schedule")
        if beta is None and evolved is not None:
            beta = reader.get(evolved, "beta_schedule")
        uses.append(
            AnimateDiffUse(
                node_id=node_id,
                class_type=class_type,
                motion_module=motion_module,
                beta_schedule=_as_str(beta),
                context_length=_as_int(reader.get(own_context, "context_length"))
                if own_context
                else None,
                context_overlap=_as_int(reader.get(own_context, "context_overlap"))
                if own_context
                else None,
                closed_loop=_as_bool(reader.get(own_context, "closed_loop"))
                if own_context
                else None,
            )
        )
    return uses


def extract_params(graph: Mapping[str, Any]) -> GraphParams:
    """Read seeds, models, sampling, size, frames, prompts, LoRAs, ControlNets, IPAdapters and
    AnimateDiff settings from an API-format graph. Unknown nodes never break extraction."""
    if not isinstance(graph, Mapping):
        raise ValueError(
            f"an API-format graph is a JSON object of nodes, got {type(graph).__name__}"
        )
    if isinstance(graph.get("nodes"), list) and "links" in graph:
        raise ValueError(
            "this is an editor (UI-format) workflow with 'nodes' and 'links'; "
            "convert it with ui_to_api(ui_graph, object_info) first"
        )
    reader = _Reader(graph)
    params = GraphParams(class_types=sorted({reader.class_type(n) for n in reader.order}))

    for node_id in reader.order:
        for key in SEED_KEYS:
            if key in reader.inputs(node_id):
                seed = _as_int(reader.get(node_id, key))
                if seed is not None:
                    params.seeds[f"{node_id}.{key}"] = seed

    sampler_ids = [n for n in reader.order if _is_sampler(reader, n)]
    params.samplers = [_read_sampler(reader, n) for n in sampler_ids]
    primary_id = _primary_sampler(reader, sampler_ids)
    primary = next((s for s in params.samplers if s.node_id == primary_id), None)
    if primary is not None:
        params.seed = primary.seed
        params.steps, params.cfg, params.denoise = primary.steps, primary.cfg, primary.denoise
        params.sampler, params.scheduler = primary.sampler, primary.scheduler
        params.positive, params.negative = primary.positive, primary.negative
    if params.seed is None and params.seeds:
        params.seed = next(iter(params.seeds.values()))

    params.checkpoints = _dedupe(
        name
        for n in reader.order
        for key in CHECKPOINT_KEYS
        if isinstance(name := reader.get(n, key), str)
    )
    if primary_id is not None:
        params.checkpoint = _checkpoint(reader, _model_source(reader, primary_id))
    if params.checkpoint is None and params.checkpoints:
        params.checkpoint = params.checkpoints[0]
    params.vae = next(
        (v for n in reader.order if isinstance(v := reader.get(n, "vae_name"), str)), None
    )

    size_node = (
        _size_node(reader, reader.linked(primary_id, "latent_image")) if primary_id else None
    )
    size_node = size_node or _fallback_size_node(reader)
    if size_node is not None:
        params.width = _as_int(reader.get(size_node, "width"))
        params.height = _as_int(reader.get(size_node, "height"))
        params.frames = _frames(reader, size_node)
    params.fps = _fps(reader)

    params.loras = _loras(reader)
    params.controlnets = _controlnets(reader)
    params.ipadapters = _ipadapters(reader)
    params.animatediff = _animatediff(reader)
    params.input_images = _dedupe(
        name
        for n in reader.order
        if reader.class_type(n).startswith("LoadImage")
        and isinstance(name := reader.get(n, "image"), str)
    )
    if params.animatediff:
        params.motion_module = params.animatediff[0].motion_module
    return params
