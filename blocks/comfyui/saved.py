"""A finished prompt's output files found again on the server by their names, for when
neither ComfyUI's history (lost on every restart) nor an earlier run's record (written only
once this process read the history) holds them: the server finished the prompt and went down,
or the orchestrator died, in the moment between.

Every render's save nodes write under a prefix naming its prompt (`output_prefix`), unique
per prompt id, so ComfyUI's counter starts at 00001 for it and the files' names follow from
the graph alone (ComfyUI's `folder_paths.get_save_image_path` and the nodes' own naming):

  SaveImage         `{prefix}_{counter:05}_.png`, one per image of the batch, counter from 1
  SaveAnimatedWEBP  `{prefix}_00001_.webp`, the whole batch as one animation

with the subfolder taken from a prefix holding '/'. A file is taken as this render's only when
the graph ComfyUI embedded in it (the PNG `prompt` text chunk; the WEBP's EXIF 0x0110
`prompt:` entry) equals the graph being rendered and it decodes whole. Anything else (another
save node type, a batch size the graph does not state, a prefix that does not name this prompt,
a server started with --disable-metadata) is not guessed at: the prompt is rendered again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageSequence

from blocks.comfyui.models import OutputFile
from workflows.graph import is_link, sorted_node_ids

PROMPT_TAG_LENGTH = 8  # of the prompt id, in the prefix: unique enough per cut and attempt


def output_prefix(stem: str, prompt_id: str) -> str:
    """The `filename_prefix` of a render: readable in the output folder (`stem`, e.g.
    `anime/<project>/<cut>-<phase>-a01`), and naming its prompt so its files can be found
    again (`prefix_names_prompt`)."""
    return f"{stem}-{prompt_id[:PROMPT_TAG_LENGTH]}"


def prefix_names_prompt(prefix: str, prompt_id: str) -> bool:
    """The prefix was made for this prompt id (a node may add its own suffix: `_frame`)."""
    return f"-{prompt_id[:PROMPT_TAG_LENGTH]}" in os.path.basename(os.path.normpath(prefix))


def _png_prompt(image: Image.Image) -> str | None:
    text = getattr(image, "text", None) or {}
    return text.get("prompt")


def _webp_prompt(image: Image.Image) -> str | None:
    entry = image.getexif().get(0x0110)
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8", "replace")
    if isinstance(entry, str) and entry.startswith("prompt:"):
        return entry.removeprefix("prompt:")
    return None


@dataclass(frozen=True)
class Saver:
    extension: str
    per_image: bool  # one file per image of the batch (else one file for the whole batch)
    embedded_graph: Callable[[Image.Image], str | None]


# The save nodes whose files can be named in advance and verified. Video combine nodes
# (VideoHelperSuite's VHS_VideoCombine, SaveVideo, SaveWEBM) are not among them: their names or
# metadata cannot be checked this way, so a prompt with one is rendered again.
SAVERS: dict[str, Saver] = {
    "SaveImage": Saver("png", True, _png_prompt),
    "SaveAnimatedWEBP": Saver("webp", False, _webp_prompt),
}

# Where a node's batch size comes from (video latents, whose one latent decodes to several
# frames, are left out on purpose): an int input that sets it, or the input whose batch it
# keeps. A node not listed may change the batch (RepeatLatentBatch, LatentFromBatch, a
# LoadImage of an animated file), so a save node behind one has no known number of files.
BATCH_FROM: dict[str, str] = {
    "EmptyImage": "batch_size",
    "EmptyLatentImage": "batch_size",
    "EmptySD3LatentImage": "batch_size",
    "SVD_img2vid_Conditioning": "video_frames",
    "ImageInvert": "image",
    "ImageBlur": "image",
    "ImageSharpen": "image",
    "ImageAddNoise": "image",
    "ImageScale": "image",
    "ImageScaleBy": "image",
    "ImageUpscaleWithModel": "image",
    "VAEDecode": "samples",
    "VAEDecodeTiled": "samples",
    "VAEEncode": "pixels",
    "KSampler": "latent_image",
    "KSamplerAdvanced": "latent_image",
    "LatentUpscale": "samples",
    "LatentUpscaleBy": "samples",
    "SetLatentNoiseMask": "samples",
}


# Nodes whose batch is the sum of their inputs' (torch.cat along the batch).
BATCH_SUM: dict[str, tuple[str, ...]] = {"ImageBatch": ("image1", "image2")}


def batch_size(graph: dict[str, Any], link: Any, _path: frozenset[str] = frozenset()) -> int | None:
    """How many images the node output `link` points at holds, when the graph says so."""
    if isinstance(link, int) and not isinstance(link, bool):
        return link if link > 0 else None
    if not is_link(link):
        return None
    node_id = str(link[0])
    node = graph.get(node_id)
    if node_id in _path or not isinstance(node, dict):
        return None  # a cycle or a dangling link: not a graph ComfyUI ran
    inputs, class_type = node.get("inputs") or {}, str(node.get("class_type"))
    path = _path | {node_id}
    if class_type in BATCH_SUM:
        counts = [batch_size(graph, inputs.get(name), path) for name in BATCH_SUM[class_type]]
        return None if None in counts else sum(c for c in counts if c is not None)
    source = BATCH_FROM.get(class_type)
    return None if source is None else batch_size(graph, inputs.get(source), path)


@dataclass(frozen=True)
class ExpectedFiles:
    """The files a finished prompt left, and the one after each node's last, which must not
    be there (it would mean the prefix saw more than one render: which files belong together
    is then unknown)."""

    files: list[OutputFile]
    next_files: list[OutputFile]


def expected_files(
    graph: dict[str, Any], prompt_id: str, output_types: set[str]
) -> ExpectedFiles | str:
    """The files the graph's output nodes (`output_types`: the server's output node classes)
    write under prefixes naming `prompt_id`, or why they cannot be known."""
    files: list[OutputFile] = []
    after: list[OutputFile] = []
    for node_id in sorted_node_ids(graph):
        node = graph[node_id]
        class_type = str(node.get("class_type"))
        if class_type not in output_types:
            continue
        saver = SAVERS.get(class_type)
        if saver is None:
            return f"node {node_id} ({class_type}) saves files that cannot be found by name"
        inputs = node.get("inputs") or {}
        prefix = inputs.get("filename_prefix")
        named_here = isinstance(prefix, str) and prefix_names_prompt(prefix, prompt_id)
        if not isinstance(prefix, str) or not named_here or "%" in prefix:
            return f"node {node_id} ({class_type}) has no filename_prefix naming this prompt"
        frames = batch_size(graph, inputs.get("images"))
        count = frames if saver.per_image else 1
        if count is None:
            return f"node {node_id} ({class_type}): the graph does not say how many images it saves"
        # ComfyUI marks an animation saved from more than one frame as animated.
        animated = not saver.per_image and frames != 1
        subfolder = os.path.dirname(os.path.normpath(prefix))
        name = os.path.basename(os.path.normpath(prefix))

        named = [
            OutputFile(
                node_id=node_id,
                kind="images",
                filename=f"{name}_{counter:05}_.{saver.extension}",
                subfolder=subfolder,
                animated=animated,
            )
            for counter in range(1, count + 2)
        ]
        files.extend(named[:-1])
        after.append(named[-1])
    if not files:
        return "the graph has no output node"
    return ExpectedFiles(files, after)


def embedded_graph_matches(path: Path, graph: dict[str, Any], class_type: str) -> str | None:
    """None when the file decodes whole and ComfyUI embedded exactly `graph` in it, else why
    not (a file of another render under the same name, a cut file, metadata switched off)."""
    saver = SAVERS[class_type]
    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                frame.load()  # a truncated file fails here
            embedded = saver.embedded_graph(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"does not decode ({exc})"  # PIL's pixel cap stops a bomb before it is decoded
    if embedded is None:
        return "holds no graph (the server may run with --disable-metadata)"
    found: Any = None
    with contextlib.suppress(ValueError):
        found = json.loads(embedded)
    return None if found == graph else "was saved by another graph"
