"""Model-free node implementations: enough of ComfyUI's core nodes to write real files.

Images are float32 arrays shaped `[batch, height, width, 3]` in 0..1, as in ComfyUI. Everything
is deterministic: the same graph gives the same pixels and the same bytes. Nodes that need
models (checkpoints, samplers, VAEs, ...) get a stand-in (`fallback`) whose outputs are derived
from a digest of the node's inputs, so seeds, prompts and sizes still change the picture.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin
from scipy import ndimage


@dataclass(frozen=True)
class Latent:
    """A latent batch: only its pixel size, batch length and a digest of how it was made."""

    width: int
    height: int
    batch: int
    digest: bytes


@dataclass(frozen=True)
class Opaque:
    """A value the test server cannot compute for real (MODEL, CLIP, CONDITIONING, ...)."""

    type: str
    digest: bytes

    def __str__(self) -> str:
        return f"<{self.type} {self.digest.hex()[:12]}>"


@dataclass
class NodeResult:
    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None
    # SaveImageWebsocket: PNG frames the executor sends as binary WebSocket messages.
    frames: list[bytes] = field(default_factory=list)


class NotSupportedByTestServer(NotImplementedError):
    pass


@dataclass
class NodeCall:
    """What a node implementation gets: its inputs and where it may write files."""

    node_id: str
    class_type: str
    inputs: dict[str, Any]
    digest: bytes
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    store: Any  # OutputStore (files.py); typed loosely to keep this module free of I/O setup
    return_types: list[Any]


NodeImpl = Callable[[NodeCall], NodeResult]
NODES: dict[str, NodeImpl] = {}


def node(*names: str) -> Callable[[NodeImpl], NodeImpl]:
    def register(fn: NodeImpl) -> NodeImpl:
        for name in names:
            NODES[name] = fn
        return fn

    return register


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(255.0 * image, 0, 255).astype(np.uint8)


def to_pil_frames(images: Any) -> list[Image.Image]:
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise TypeError(f"expected an IMAGE batch, got {type(images).__name__}")
    return [Image.fromarray(to_uint8(frame)) for frame in images]


def pattern_image(digest: bytes, batch: int, height: int, width: int) -> np.ndarray:
    """A picture that is a pure function of `digest` (stand-in for a sampler's output)."""
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    base = rng.random((batch, 1, 1, 3), dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[None, :, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, None, :, None]
    tilt = rng.random((batch, 1, 1, 3), dtype=np.float32) - 0.5
    grain = rng.random((batch, height, width, 3), dtype=np.float32) * 0.1
    return np.clip(base + tilt * (ys + xs) + grain, 0.0, 1.0).astype(np.float32)


def _rgb(color: int) -> tuple[float, float, float]:
    return ((color >> 16) & 0xFF) / 0xFF, ((color >> 8) & 0xFF) / 0xFF, (color & 0xFF) / 0xFF


@node("EmptyImage")
def empty_image(call: NodeCall) -> NodeResult:
    i = call.inputs
    image = np.empty((i["batch_size"], i["height"], i["width"], 3), dtype=np.float32)
    image[...] = _rgb(i["color"])
    return NodeResult((image,))


@node("ImageInvert")
def image_invert(call: NodeCall) -> NodeResult:
    return NodeResult((1.0 - call.inputs["image"],))


@node("ImageAddNoise")
def image_add_noise(call: NodeCall) -> NodeResult:
    image = call.inputs["image"]
    rng = np.random.default_rng(call.inputs["seed"])
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return NodeResult((np.clip(image + call.inputs["strength"] * noise, 0.0, 1.0),))


@node("ImageBlur")
def image_blur(call: NodeCall) -> NodeResult:
    image, sigma = call.inputs["image"], call.inputs["sigma"]
    blurred = ndimage.gaussian_filter(image, sigma=(0, sigma, sigma, 0), mode="reflect")
    return NodeResult((blurred.astype(np.float32),))


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    frames = [
        np.asarray(frame.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR)))
        for frame in to_pil_frames(image)
    ]
    return (np.stack(frames).astype(np.float32) / 255.0).astype(np.float32)


@node("ImageScale")
def image_scale(call: NodeCall) -> NodeResult:
    i = call.inputs
    image = i["image"]
    height, width = image.shape[1:3]
    new_w, new_h = i["width"], i["height"]
    if new_w == 0 and new_h == 0:
        return NodeResult((image,))
    if new_w == 0:
        new_w = max(1, round(width * new_h / height))
    if new_h == 0:
        new_h = max(1, round(height * new_w / width))
    return NodeResult((_resize(image, new_w, new_h, i["upscale_method"]),))


@node("RepeatImageBatch")
def repeat_image_batch(call: NodeCall) -> NodeResult:
    return NodeResult((np.tile(call.inputs["image"], (call.inputs["amount"], 1, 1, 1)),))


@node("ImageBatch")
def image_batch(call: NodeCall) -> NodeResult:
    first, second = call.inputs["image1"], call.inputs["image2"]
    if first.shape[1:3] != second.shape[1:3]:
        second = _resize(second, first.shape[2], first.shape[1], "bilinear")
    return NodeResult((np.concatenate([first, second]),))


@node("ImageFromBatch")
def image_from_batch(call: NodeCall) -> NodeResult:
    image, start = (
        call.inputs["image"],
        min(call.inputs["batch_index"], len(call.inputs["image"]) - 1),
    )
    return NodeResult((image[start : start + call.inputs["length"]].copy(),))


@node("ImageFlip")
def image_flip(call: NodeCall) -> NodeResult:
    axis = 1 if call.inputs["flip_method"].startswith("x") else 2
    return NodeResult((np.flip(call.inputs["image"], axis=axis).copy(),))


@node("ImageRotate")
def image_rotate(call: NodeCall) -> NodeResult:
    turns = {"none": 0, "90 degrees": 3, "180 degrees": 2, "270 degrees": 1}[
        call.inputs["rotation"]
    ]
    return NodeResult((np.rot90(call.inputs["image"], k=turns, axes=(1, 2)).copy(),))


@node("SolidMask")
def solid_mask(call: NodeCall) -> NodeResult:
    i = call.inputs
    return NodeResult((np.full((1, i["height"], i["width"]), i["value"], dtype=np.float32),))


@node("MaskToImage")
def mask_to_image(call: NodeCall) -> NodeResult:
    mask = call.inputs["mask"]
    return NodeResult((np.repeat(mask[..., None], 3, axis=-1).astype(np.float32),))


@node("EmptyLatentImage")
def empty_latent_image(call: NodeCall) -> NodeResult:
    i = call.inputs
    return NodeResult((Latent(i["width"], i["height"], i["batch_size"], call.digest),))


@node("PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline")
def primitive(call: NodeCall) -> NodeResult:
    return NodeResult((call.inputs["value"],))


@node("PrimitiveBoolean")
def primitive_boolean(call: NodeCall) -> NodeResult:
    return NodeResult((bool(call.inputs["value"]),))


@node("StringConcatenate")
def string_concatenate(call: NodeCall) -> NodeResult:
    i = call.inputs
    return NodeResult((f"{i['string_a']}{i['delimiter']}{i['string_b']}",))


@node("RegexReplace")
def regex_replace(call: NodeCall) -> NodeResult:
    i = call.inputs
    flags = re.IGNORECASE if i.get("case_insensitive", True) else 0
    if i.get("multiline"):
        flags |= re.MULTILINE
    if i.get("dotall"):
        flags |= re.DOTALL
    count = i.get("count", 0)
    return NodeResult(
        (re.sub(i["regex_pattern"], i["replace"], i["string"], count=count, flags=flags),)
    )


@node("LoadImage")
def load_image(call: NodeCall) -> NodeResult:
    path = call.store.input_path(call.inputs["image"])
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    array = np.asarray(rgba).astype(np.float32) / 255.0
    image = array[None, :, :, :3].copy()
    mask = (1.0 - array[None, :, :, 3]).astype(np.float32)
    return NodeResult((image, mask))


def png_bytes(frame: Image.Image, text: dict[str, str] | None = None, level: int = 4) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG", pnginfo=info, compress_level=level)
    return buffer.getvalue()


def _png_text(call: NodeCall) -> dict[str, str]:
    # ComfyUI embeds the graph (and the editor's extra_pnginfo) in every saved PNG.
    text = {"prompt": json.dumps(call.prompt)}
    for key, value in (call.extra_data.get("extra_pnginfo") or {}).items():
        text[key] = json.dumps(value)
    return text


@node("SaveImage")
def save_image(call: NodeCall) -> NodeResult:
    frames = to_pil_frames(call.inputs["images"])
    text = _png_text(call)
    saved = call.store.save_series(
        call.inputs["filename_prefix"], "png", [png_bytes(f, text) for f in frames], kind="output"
    )
    return NodeResult(ui={"images": saved})


@node("PreviewImage")
def preview_image(call: NodeCall) -> NodeResult:
    frames = to_pil_frames(call.inputs["images"])
    payloads = [png_bytes(f, _png_text(call), level=1) for f in frames]
    saved = call.store.save_series(call.store.temp_prefix, "png", payloads, kind="temp")
    return NodeResult(ui={"images": saved})


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


@node("SaveAnimatedWEBP")
def save_animated_webp(call: NodeCall) -> NodeResult:
    i = call.inputs
    frames = to_pil_frames(i["images"])
    # ComfyUI embeds the graph in the EXIF (0x0110 "prompt:..."), extra_pnginfo below it.
    exif = frames[0].getexif()
    exif[0x0110] = f"prompt:{json.dumps(call.prompt)}"
    for offset, (key, value) in enumerate((call.extra_data.get("extra_pnginfo") or {}).items()):
        exif[0x010F - offset] = f"{key}:{json.dumps(value)}"
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=int(1000.0 / i["fps"]),
        exif=exif,
        lossless=bool(i["lossless"]),
        quality=i["quality"],
        method=_WEBP_METHODS.get(i["method"], 4),
    )
    saved = call.store.save_series(i["filename_prefix"], "webp", [buffer.getvalue()], "output")
    return NodeResult(ui={"images": saved, "animated": [len(frames) != 1]})


@node("SaveAnimatedPNG")
def save_animated_png(call: NodeCall) -> NodeResult:
    i = call.inputs
    frames = to_pil_frames(i["images"])
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="PNG",
        save_all=True,
        append_images=frames[1:],
        duration=int(1000.0 / i["fps"]),
        compress_level=i["compress_level"],
    )
    saved = call.store.save_series(i["filename_prefix"], "png", [buffer.getvalue()], "output")
    return NodeResult(ui={"images": saved, "animated": [True]})


@node("SaveImageWebsocket")
def save_image_websocket(call: NodeCall) -> NodeResult:
    return NodeResult(frames=[png_bytes(f) for f in to_pil_frames(call.inputs["images"])])


@node("PreviewAny")
def preview_any(call: NodeCall) -> NodeResult:
    value = call.inputs["source"]
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return NodeResult(ui={"text": [text]})


def digest_of(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


def fallback(call: NodeCall, is_output_node: bool) -> NodeResult:
    """Outputs for a node the test server has no real implementation of.

    Output nodes cannot be faked (they would have to write a real file), so they fail the
    way a missing dependency fails on a real server.
    """
    if is_output_node:
        raise NotSupportedByTestServer(
            f"the ComfyUI test server cannot execute output node {call.class_type}"
        )
    values = [v for v in call.inputs.values()]
    latent = next((v for v in values if isinstance(v, Latent)), None)
    image = next((v for v in values if isinstance(v, np.ndarray) and v.ndim == 4), None)
    width = int(call.inputs.get("width", 0) or 0)
    height = int(call.inputs.get("height", 0) or 0)
    batch = int(call.inputs.get("batch_size", call.inputs.get("length", 1)) or 1)
    outputs: list[Any] = []
    for index, kind in enumerate(call.return_types):
        digest = digest_of(call.digest.hex(), index)
        if kind == "LATENT":
            if latent is not None:
                outputs.append(Latent(latent.width, latent.height, latent.batch, digest))
            else:
                outputs.append(Latent(width or 64, height or 64, batch, digest))
        elif kind == "IMAGE":
            if image is not None:
                b, h, w, _ = image.shape
                outputs.append(0.5 * image + 0.5 * pattern_image(digest, b, h, w))
            elif latent is not None:
                outputs.append(pattern_image(digest, latent.batch, latent.height, latent.width))
            else:
                outputs.append(pattern_image(digest, batch, height or 64, width or 64))
        elif kind == "MASK":
            source = image if image is not None else pattern_image(digest, 1, 64, 64)
            outputs.append(source[..., 0].copy())
        else:
            outputs.append(Opaque(str(kind), digest))
    return NodeResult(tuple(outputs))


def load_image_validator(input_dir: Path) -> Callable[[str, Any], str | None]:
    """LoadImage's own VALIDATE_INPUTS: the file must be in the input folder."""

    def validate(name: str, value: Any) -> str | None:
        if name != "image":
            return None
        candidate = (input_dir / str(value)).resolve()
        if input_dir.resolve() not in candidate.parents or not candidate.is_file():
            return f"Invalid image file: {value}"
        return None

    return validate
