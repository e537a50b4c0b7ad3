"""A tiny CCIP folder with the real one's signature, built for the tests.

deepghs' CCIP (``deepghs/ccip_onnx``, e.g. ccip-caformer-24-randaug-pruned) ships three files;
these have the same names, inputs and outputs:

* ``model_feat.onnx``: ``input`` float32 [N, 3, 384, 384] -> ``output`` [N, 768]; here 48x48
  average pooling (an 8x8 colour thumbnail) and a fixed random projection, so the same picture
  gives the same feature and different pictures differ about as much as their thumbnails.
* ``model_metrics.onnx``: ``input`` [N, 768] -> ``output`` [N, N] differences, here
  (1 - cosine) / 2.
* ``metrics.json``: ``{"threshold": 0.213}``, the difference threshold the model card reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE, DIM = 384, 768
THRESHOLD = 0.213


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def build_feature_model(path: Path, *, input_name: str = "input", seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(3 * 8 * 8, DIM)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", [input_name], ["pooled"], kernel_shape=[48, 48], strides=[48, 48]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_ccip_feat",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", DIM])],
        [numpy_helper.from_array(projection, "projection")],
    )
    _save(graph, path)
    return path


def build_metrics_model(path: Path) -> Path:
    nodes = [
        helper.make_node("ReduceL2", ["input"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["input", "norm"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["unit_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["unit", "unit_t"], ["cos"]),
        helper.make_node("Sub", ["one", "cos"], ["gap"]),
        helper.make_node("Div", ["gap", "two"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_ccip_metrics",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", DIM])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "N"])],
        [
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        ],
    )
    _save(graph, path)
    return path


def build_ccip_folder(folder: Path, *, input_name: str = "input") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    build_feature_model(folder / "model_feat.onnx", input_name=input_name)
    build_metrics_model(folder / "model_metrics.onnx")
    (folder / "metrics.json").write_text(json.dumps({"threshold": THRESHOLD}))
    return folder
