"""Every shipped template, every optional part switched on (LoRAs, reference image, ControlNet),
validated against the real ComfyUI's /object_info with the custom packs loaded: by the
studio's own validator, then by ComfyUI's own (POST /prompt validates before it queues).
Zero-byte model files stand in for the real ones: enough for validation."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from PIL import Image

from tests.real_comfyui.peer import RealComfyUI
from workflows import list_templates, render_template, validate_graph

MODELS = {  # folder under models/ -> files the templates name
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "svd_xt.safetensors"],
    "loras": ["character.safetensors", "style.safetensors"],
    "controlnet": ["control_v11p_sd15_openpose.pth"],
    "animatediff_models": ["mm_sd_v15_v2.ckpt"],
}
IMAGES = ("reference.png", "pose.png", "keyframe.png")

FULL = {  # every optional part on, so its nodes are in the graph and get validated
    "positive": "1girl, red scarf, rooftop at night",
    "negative": "lowres",
    "seed": 7,
    "loras": [{"name": "character.safetensors"}, {"name": "style.safetensors"}],
    "reference_image": "reference.png",
    "controlnet": {"name": "control_v11p_sd15_openpose.pth", "image": "pose.png"},
    "init_image": "keyframe.png",
}


@pytest.fixture(scope="module")
def catalogue(real_comfyui: RealComfyUI) -> dict:
    if not real_comfyui.controllable:
        pytest.skip("placeholder model files need the peer ComfyUI, not COMFYUI_URL")
    for folder, names in MODELS.items():
        for name in names:
            real_comfyui.placeholder_model(folder, name)
    assert real_comfyui.base is not None
    for name in IMAGES:
        (real_comfyui.base / "input").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (90, 120, 200)).save(real_comfyui.base / "input" / name)
    return httpx.get(f"{real_comfyui.url}/object_info", timeout=120).json()


@pytest.mark.parametrize("template", list_templates())
def test_template_validates_on_the_real_server(
    template: str, catalogue: dict, real_comfyui: RealComfyUI
) -> None:
    from workflows import load_template

    declared = load_template(template).parameters
    params = {k: v for k, v in FULL.items() if k in declared}
    if "loras" in params:  # as many as the template has slots
        params["loras"] = params["loras"][: len(declared["loras"].bind)]
    graph = render_template(template, params)
    validate_graph(graph, catalogue, template=template)  # raises naming node and input

    prompt_id = f"validate-{template}-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(
        f"{real_comfyui.url}/prompt", json={"prompt": graph, "prompt_id": prompt_id}, timeout=60
    )
    assert answer.status_code == 200, f"{template}: ComfyUI refused it: {answer.text[:2000]}"
    assert answer.json().get("node_errors") == {}, answer.text[:2000]
    # It runs until the first zero-byte model; wait for that so it blocks no other test.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if httpx.get(f"{real_comfyui.url}/history/{prompt_id}", timeout=10).json():
            return
        time.sleep(0.5)
    pytest.fail(f"{template}: the validation prompt never finished")
