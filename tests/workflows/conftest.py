"""Fixtures for the workflow tests: real node catalogues and hand-written editor saves."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workflows import custom_node_definitions, load_object_info

FIXTURES = Path(__file__).parent / "fixtures"
# The captured answers of a real ComfyUI 0.3.64, copied into the repository (the test server
# serves the same files); COMFYUI_SAMPLES_DIR points the tests at another capture.
SAMPLES = Path(
    os.environ.get(
        "COMFYUI_SAMPLES_DIR",
        Path(__file__).resolve().parents[1] / "comfyui_server" / "samples",
    )
)

# Model files and uploaded inputs a fully provisioned studio server would list.
SERVER_FILES: dict[tuple[str, str], list[str]] = {
    ("CheckpointLoaderSimple", "ckpt_name"): [
        "v1-5-pruned-emaonly.safetensors",
        "anything-v5.safetensors",
    ],
    ("ImageOnlyCheckpointLoader", "ckpt_name"): ["svd_xt.safetensors"],
    ("LoraLoader", "lora_name"): [
        "character.safetensors",
        "style.safetensors",
        "hero_character.safetensors",
        "mika.safetensors",
        "watercolor.safetensors",
    ],
    ("ControlNetLoader", "control_net_name"): ["control_v11p_sd15_openpose.pth"],
    ("ADE_AnimateDiffLoaderGen1", "model_name"): ["mm_sd_v15_v2.ckpt"],
    ("LoadImage", "image"): [
        "probe_in.png",
        "reference.png",
        "pose.png",
        "keyframe.png",
        "pose_skeleton.png",
        "mika_face.png",
    ],
}


# Parameters that make each template do everything it can (every optional part enabled).
FULL_PARAMS = {
    "preview": {"seed": 11, "width": 96, "height": 64, "frames": 4, "fps": 12.0},
    "keyframe": {
        "seed": 11,
        "positive": "mika, silver hair, red eyes, school rooftop at dusk",
        "negative": "lowres",
        "checkpoint": "anything-v5.safetensors",
        "steps": 24,
        "cfg": 6.5,
        "width": 640,
        "height": 896,
        "loras": [
            {"name": "mika.safetensors", "strength_model": 0.8, "strength_clip": 0.7},
            {"name": "watercolor.safetensors", "strength_model": 0.5, "strength_clip": 0.4},
        ],
        "reference_image": "mika_face.png",
        "ipadapter_weight": 0.9,
        "controlnet": {
            "name": "control_v11p_sd15_openpose.pth",
            "image": "pose.png",
            "strength": 0.7,
            "start_percent": 0.0,
            "end_percent": 0.8,
        },
    },
    "character_sheet": {
        "seed": 11,
        "positive": "mika, silver hair, red eyes, school uniform",
        "reference_image": "mika_face.png",
        "loras": [{"name": "mika.safetensors", "strength_model": 0.8, "strength_clip": 0.8}],
    },
    "animatediff_loop": {
        "seed": 11,
        "positive": "mika waving, hair swaying in the wind",
        "loras": [{"name": "mika.safetensors"}],
    },
    "svd_img2vid": {"seed": 11, "init_image": "keyframe.png", "frames": 14, "fps": 7},
}


def _load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def _sample_object_info() -> dict[str, Any]:
    path = SAMPLES / "object_info.json"
    if not path.is_file():
        pytest.fail(f"sample /object_info not found at {path}; set COMFYUI_SAMPLES_DIR")
    return load_object_info(path)


@pytest.fixture
def object_info(_sample_object_info: dict[str, Any]) -> dict[str, Any]:
    """The real 0.3.64 catalogue (496 core nodes, no model files), a private copy per test."""
    return copy.deepcopy(_sample_object_info)


@pytest.fixture
def studio_object_info(object_info: dict[str, Any]) -> dict[str, Any]:
    """The real catalogue plus IPAdapter_plus / AnimateDiff-Evolved nodes and model files."""
    catalogue = {**object_info, **custom_node_definitions()}
    for (class_type, input_name), files in SERVER_FILES.items():
        spec = catalogue[class_type]["input"]["required"][input_name]
        spec[0] = list(files)  # classic combo encoding: [[choices], {options}]
    return catalogue


@pytest.fixture
def full_params() -> dict[str, dict[str, Any]]:
    """Per template: parameters that enable every optional part (LoRAs, identity, ControlNet)."""
    return copy.deepcopy(FULL_PARAMS)


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture
def load_fixture() -> Callable[[str], Any]:
    """Read a JSON file from tests/workflows/fixtures (a fresh object on every call)."""
    return _load_fixture
