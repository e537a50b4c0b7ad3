"""Tiny ONNX models with the shapes InsightFace expects, built for the tests.

No face model can be downloaded here, so the tests build a detector and a recognizer that
InsightFace's own loader routes and runs as SCRFD and ArcFace:

* ``det_tiny.onnx``: the SCRFD output signature (scores, boxes and keypoints for strides 8,
  16 and 32 with two anchors, 9 outputs) on a fixed 256x256 input. It "sees" a face where a
  textured 96x96 tile sits on the 32-pixel grid of a plain background: each 32x32 cell is
  marked textured when its pixel variance is above a floor, and a detection fires on the
  middle cell of every fully textured 3x3 block. The box and the five keypoints it returns
  are those of the tile, so InsightFace's alignment crops exactly the tile. A plain image has
  no textured cell, hence no face.
* ``rec_tiny.onnx``: ArcFace-shaped (1x3x112x112 in, 512 out): per-channel instance
  normalisation, 4x4 average pooling and a fixed random projection. Identical crops give
  identical embeddings; different crops give embeddings about as similar as their pixel
  patterns (a random projection keeps cosines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CANVAS = 256  # detector input size; test images are this size
CELL = 32  # the detector's only active stride
TILE = 3 * CELL  # a "face" covers 3x3 cells
_ANCHORS = 2
# InsightFace's ArcFace landmark template for a 112x112 crop (utils/face_align.arcface_dst).
_ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(array, name=f"{name}_value")
    )


def build_detector(path: Path) -> Path:
    cells = CANVAS // CELL
    n32 = cells * cells * _ANCHORS
    nodes: list[onnx.NodeProto] = []
    inits = [
        numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "channel_sum_w"),
        numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "block_sum_w"),
        numpy_helper.from_array(np.array(1e5, np.float32), "texture_gain"),
        numpy_helper.from_array(np.array(1e-4, np.float32), "texture_floor"),
        numpy_helper.from_array(np.array(8.5, np.float32), "full_block"),
        numpy_helper.from_array(np.array(10.0, np.float32), "score_gain"),
        numpy_helper.from_array(np.zeros((cells * cells, 1), np.float32), "second_anchor"),
        numpy_helper.from_array(np.array([cells * cells, 1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([n32, 1], np.int64), "score_shape"),
    ]
    # Per-cell pixel variance, summed over channels.
    nodes += [
        helper.make_node("Mul", ["input.1", "input.1"], ["squares"], name="squares"),
        helper.make_node(
            "AveragePool",
            ["input.1"],
            ["cell_mean"],
            kernel_shape=[CELL, CELL],
            strides=[CELL, CELL],
            name="cell_mean",
        ),
        helper.make_node(
            "AveragePool",
            ["squares"],
            ["cell_sq_mean"],
            kernel_shape=[CELL, CELL],
            strides=[CELL, CELL],
            name="cell_sq_mean",
        ),
        helper.make_node("Mul", ["cell_mean", "cell_mean"], ["cell_mean_sq"], name="mean_sq"),
        helper.make_node("Sub", ["cell_sq_mean", "cell_mean_sq"], ["cell_var_c"], name="var"),
        helper.make_node("Conv", ["cell_var_c", "channel_sum_w"], ["cell_var"], name="chsum"),
        helper.make_node("Sub", ["cell_var", "texture_floor"], ["var_margin"], name="margin"),
        helper.make_node("Mul", ["var_margin", "texture_gain"], ["var_logit"], name="vlogit"),
        helper.make_node("Sigmoid", ["var_logit"], ["textured"], name="textured"),
        # How many of the 3x3 cells around each cell are textured; faces peak at 9.
        helper.make_node(
            "Conv",
            ["textured", "block_sum_w"],
            ["block_count"],
            pads=[1, 1, 1, 1],
            name="block_count",
        ),
        helper.make_node(
            "MaxPool",
            ["block_count"],
            ["block_max"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            name="block_max",
        ),
        helper.make_node("Equal", ["block_count", "block_max"], ["is_peak_b"], name="peak"),
        helper.make_node("Cast", ["is_peak_b"], ["is_peak"], to=TensorProto.FLOAT, name="peakf"),
        helper.make_node("Sub", ["block_count", "full_block"], ["block_margin"], name="bmargin"),
        helper.make_node("Mul", ["block_margin", "score_gain"], ["block_logit"], name="blogit"),
        helper.make_node("Sigmoid", ["block_logit"], ["block_score"], name="bscore"),
        helper.make_node("Mul", ["block_score", "is_peak"], ["score_map"], name="score_map"),
        helper.make_node("Reshape", ["score_map", "flat_shape"], ["score_flat"], name="flat"),
        helper.make_node(
            "Concat", ["score_flat", "second_anchor"], ["score_pairs"], axis=1, name="pairs"
        ),
        helper.make_node("Reshape", ["score_pairs", "score_shape"], ["score_32"], name="s32"),
    ]
    # Box and keypoints, in stride units from the anchor centre (the top-left corner of the
    # middle cell): the tile spans one cell left/up and two cells right/down of it.
    box = np.tile(np.array([[1.0, 1.0, 2.0, 2.0]], np.float32), (n32, 1))
    kps_px = _ARCFACE_TEMPLATE * (TILE / 112.0) - CELL
    kps = np.tile((kps_px / CELL).reshape(1, 10).astype(np.float32), (n32, 1))
    nodes += [_const("bbox_32", box), _const("kps_32", kps)]
    outputs = {}
    for stride in (8, 16):
        n = (CANVAS // stride) ** 2 * _ANCHORS
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            name = f"{kind}_{stride}"
            nodes.append(_const(name, np.zeros((n, width), np.float32)))
            outputs[name] = (n, width)
    outputs.update({"score_32": (n32, 1), "bbox_32": (n32, 4), "kps_32": (n32, 10)})
    order = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, CANVAS, CANVAS])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(outputs[n])) for n in order],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_recognizer(path: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    pooled = 3 * 28 * 28
    inits = [
        numpy_helper.from_array(np.ones(3, np.float32), "in_scale"),
        numpy_helper.from_array(np.zeros(3, np.float32), "in_bias"),
        numpy_helper.from_array(
            (rng.standard_normal((pooled, 512)) / np.sqrt(pooled)).astype(np.float32), "proj"
        ),
        numpy_helper.from_array(np.zeros(512, np.float32), "proj_bias"),
    ]
    # Node names must not start with "Sub"/"Mul": InsightFace reads that as an MXNet model
    # that normalises itself, and would skip its own (x - 127.5) / 127.5.
    nodes = [
        helper.make_node(
            "InstanceNormalization", ["data", "in_scale", "in_bias"], ["normed"], name="inorm"
        ),
        helper.make_node(
            "AveragePool",
            ["normed"],
            ["pooled"],
            kernel_shape=[4, 4],
            strides=[4, 4],
            name="pool",
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "proj", "proj_bias"], ["fc1"], name="embed"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_face_pack(folder: Path) -> Path:
    """A model folder laid out like an InsightFace pack: one detector, one recognizer."""
    folder.mkdir(parents=True, exist_ok=True)
    build_detector(folder / "det_tiny.onnx")
    build_recognizer(folder / "rec_tiny.onnx")
    return folder
