"""Editor (UI-format) saves converted to API format using the server's /object_info."""

from __future__ import annotations

import copy

import pytest

from workflows import UIImportError, extract_params, find_problems, ui_to_api, validate_graph


def test_keyframe_save_converts_like_the_editor(object_info, load_fixture):
    api = ui_to_api(load_fixture("ui_keyframe_lora_controlnet.json"), object_info)
    # Reroute, PrimitiveNode, Note, the muted preview and the bypassed LoRA are gone.
    assert sorted(api, key=int) == ["3", "4", "5", "6", "7", "8", "9", "10", "12", "13", "14"]
    sampler = api["3"]
    assert sampler["class_type"] == "KSampler"
    assert sampler["inputs"] == {
        "seed": 424242,  # from the PrimitiveNode, not the stale widget value
        "steps": 28,
        "cfg": 7,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
        "denoise": 1,
        "model": ["10", 0],  # the bypassed style LoRA passes its MODEL input through
        "positive": ["14", 0],
        "negative": ["14", 1],
        "latent_image": ["5", 0],
    }
    assert "randomize" not in sampler["inputs"].values()
    assert api["6"]["inputs"]["clip"] == ["10", 1]  # CLIP passes through the bypass too
    assert api["8"]["inputs"]["vae"] == ["4", 2]  # through the Reroute
    assert api["10"]["inputs"] == {
        "lora_name": "hero_character.safetensors",
        "strength_model": 0.8,
        "strength_clip": 0.6,
        "model": ["4", 0],
        "clip": ["4", 1],
    }
    assert api["13"]["inputs"] == {"image": "pose_skeleton.png"}  # upload button dropped
    assert api["14"]["inputs"]["strength"] == 0.75
    assert "vae" not in api["14"]["inputs"]  # optional, unconnected
    assert api["10"]["_meta"]["title"] == "Character LoRA"
    assert api["5"]["_meta"]["title"] == "Empty Latent Image"


def test_converted_keyframe_validates_and_extracts(studio_object_info, load_fixture):
    api = ui_to_api(load_fixture("ui_keyframe_lora_controlnet.json"), studio_object_info)
    validate_graph(api, studio_object_info)
    params = extract_params(api)
    assert params.seed == 424242
    assert [lo.name for lo in params.loras] == ["hero_character.safetensors"]
    assert params.controlnets[0].model == "control_v11p_sd15_openpose.pth"
    assert params.controlnets[0].end_percent == 0.85
    assert params.positive.startswith("masterpiece, 1girl, silver hair")


def test_new_frontend_save_converts_and_validates_on_core_nodes(object_info, load_fixture):
    api = ui_to_api(load_fixture("ui_preview_frontend_1_27.json"), object_info)
    assert sorted(api, key=int) == ["1", "2", "3", "5", "6", "7", "8"]
    # PrimitiveInt's own control_after_generate value ("increment") is dropped too.
    assert api["2"]["inputs"] == {"value": 12345}
    # A widget input fed by a link takes the link; its stale widget value is gone.
    assert api["3"]["inputs"] == {"seed": ["2", 0], "strength": 0.4, "image": ["1", 0]}
    # Upload button after the required inputs is dropped; channel keeps its place.
    assert api["5"]["inputs"] == {"image": "probe_in.png", "channel": "alpha"}
    # The bypassed blur hands its IMAGE input straight to the blend.
    assert api["7"]["inputs"]["image1"] == ["3", 0]
    assert api["7"]["inputs"]["blend_mode"] == "multiply"  # V3 combo encoding
    assert api["8"]["inputs"]["lossless"] is True
    validate_graph(api, object_info)
    assert extract_params(api).seed == 12345  # resolved through the PrimitiveInt link


def test_links_saved_as_objects_give_the_same_graph(object_info, load_fixture):
    ui = load_fixture("ui_preview_frontend_1_27.json")
    as_objects = copy.deepcopy(ui)
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    as_objects["links"] = [dict(zip(keys, link, strict=True)) for link in ui["links"]]
    assert ui_to_api(as_objects, object_info) == ui_to_api(ui, object_info)


def test_unknown_node_types_are_named_by_id_and_type(object_info, load_fixture):
    ui = load_fixture("ui_keyframe_lora_controlnet.json")
    ui["nodes"].append(
        {"id": 30, "type": "IPAdapterAdvanced", "mode": 0, "inputs": [], "widgets_values": [1.0]}
    )
    ui["nodes"].append({"id": 31, "type": "FaceDetailer", "mode": 0, "widgets_values": []})
    ui["nodes"].append({"id": 32, "type": "UnusedCustom", "mode": 2})  # muted: never submitted
    with pytest.raises(UIImportError) as err:
        ui_to_api(ui, object_info)
    assert len(err.value.problems) == 2
    assert "node 30 (IPAdapterAdvanced)" in err.value.problems[0]
    assert "node 31 (FaceDetailer)" in err.value.problems[1]
    assert "custom node not installed" in str(err.value)


def test_broken_links_are_reported(object_info, load_fixture):
    ui = load_fixture("ui_preview_frontend_1_27.json")
    ui["links"] = [link for link in ui["links"] if link[0] != 6]
    with pytest.raises(UIImportError) as err:
        ui_to_api(ui, object_info)
    assert "node 7 (ImageBlend) input 'image2': link 6 is not in 'links'" in str(err.value)


def test_muted_source_leaves_the_input_out_for_validation_to_report(object_info, load_fixture):
    ui = load_fixture("ui_preview_frontend_1_27.json")
    for node in ui["nodes"]:
        if node["id"] == 6:
            node["mode"] = 2
    api = ui_to_api(ui, object_info)
    assert "image2" not in api["7"]["inputs"]
    problems = find_problems(api, object_info)
    assert [(p.kind, p.node_id, p.input_name) for p in problems] == [
        ("missing_input", "7", "image2")
    ]


def test_subgraphs_and_non_editor_input_get_clear_errors(object_info, load_fixture):
    ui = load_fixture("ui_preview_frontend_1_27.json")
    sub_id = "3f0c9e2a-1b7d-4c55-8f0e-2d9a6b1c7e44"
    ui["definitions"] = {"subgraphs": [{"id": sub_id, "nodes": [], "links": []}]}
    ui["nodes"].append({"id": 40, "type": sub_id, "mode": 0})
    with pytest.raises(UIImportError, match="node 40 .*subgraphs are not supported"):
        ui_to_api(ui, object_info)
    with pytest.raises(UIImportError, match="'nodes' list"):
        ui_to_api({"1": {"class_type": "EmptyImage", "inputs": {}}}, object_info)
