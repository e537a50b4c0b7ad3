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
    assert "node 7 (ImageBlend) input 'image2': link 6 is not in the workflow's 'links'" in str(
        err.value
    )


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


def test_non_editor_input_gets_a_clear_error(object_info):
    with pytest.raises(UIImportError, match="'nodes' list"):
        ui_to_api({"1": {"class_type": "EmptyImage", "inputs": {}}}, object_info)


def _link(link_id, origin, origin_slot, target, target_slot, kind):
    return [link_id, origin, origin_slot, target, target_slot, kind]


def _default_json():
    """ComfyUI's own default.json as the 0.1.95 template pack saves it (trimmed positions)."""
    return {
        "nodes": [
            {
                "id": 4,
                "type": "CheckpointLoaderSimple",
                "mode": 0,
                "inputs": [],
                "widgets_values": ["v1-5-pruned-emaonly.safetensors"],
            },
            {"id": 5, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [512, 512, 1]},
            {
                "id": 6,
                "type": "CLIPTextEncode",
                "mode": 0,
                "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
                "widgets_values": ["a castle on a hill"],
            },
            {
                "id": 7,
                "type": "CLIPTextEncode",
                "mode": 0,
                "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
                "widgets_values": ["text, watermark"],
            },
            {
                "id": 3,
                "type": "KSampler",
                "mode": 0,
                "inputs": [
                    {"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 4},
                    {"name": "negative", "type": "CONDITIONING", "link": 6},
                    {"name": "latent_image", "type": "LATENT", "link": 2},
                ],
                "widgets_values": [156680208700286, True, 20, 8, "euler", "normal", 1],
            },
            {
                "id": 8,
                "type": "VAEDecode",
                "mode": 0,
                "inputs": [
                    {"name": "samples", "type": "LATENT", "link": 7},
                    {"name": "vae", "type": "VAE", "link": 8},
                ],
            },
            {
                "id": 9,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 9}],
            },
        ],
        "links": [
            _link(1, 4, 0, 3, 0, "MODEL"),
            _link(2, 5, 0, 3, 3, "LATENT"),
            _link(3, 4, 1, 6, 0, "CLIP"),
            _link(4, 6, 0, 3, 1, "CONDITIONING"),
            _link(5, 4, 1, 7, 0, "CLIP"),
            _link(6, 7, 0, 3, 2, "CONDITIONING"),
            _link(7, 3, 0, 8, 0, "LATENT"),
            _link(8, 4, 2, 8, 1, "VAE"),
            _link(9, 8, 0, 9, 0, "IMAGE"),
        ],
    }


def test_control_slot_is_consumed_by_position_whatever_it_holds(studio_object_info):
    object_info = studio_object_info
    api = ui_to_api(_default_json(), object_info)
    sampler = api["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (156680208700286, 20, 8)
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["denoise"]) == (
        "euler",
        "normal",
        1,
    )
    validate_graph(api, object_info)


def test_missing_widget_values_take_the_declared_default(object_info):
    api = ui_to_api(_default_json(), object_info)
    assert api["9"]["inputs"]["filename_prefix"] == "ComfyUI"  # SaveImage's own default
    ui = _default_json()
    ui["nodes"][1]["widgets_values"] = [640]  # height and batch_size missing
    assert ui_to_api(ui, object_info)["5"]["inputs"] == {
        "width": 640,
        "height": 512,
        "batch_size": 1,
    }


def _as_subgraph(ui):
    """default.json with its two text encoders moved into a subgraph (frontend 1.24+ form)."""
    sub_id = "5e1f6a0c-7a2b-4a8e-9a3c-0f3b2d1e4c55"
    inner = [n for n in ui["nodes"] if n["id"] in (6, 7)]
    for node in inner:
        node["inputs"][0]["link"] = 101 if node["id"] == 6 else 102
    definition = {
        "id": sub_id,
        "name": "Prompts",
        "inputs": [{"id": "in-clip", "name": "clip", "type": "CLIP", "linkIds": [101, 102]}],
        "outputs": [
            {"id": "out-pos", "name": "positive", "type": "CONDITIONING", "linkIds": [103]},
            {"id": "out-neg", "name": "negative", "type": "CONDITIONING", "linkIds": [104]},
        ],
        "nodes": inner,
        "links": [
            {
                "id": 101,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": 6,
                "target_slot": 0,
                "type": "CLIP",
            },
            {
                "id": 102,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": 7,
                "target_slot": 0,
                "type": "CLIP",
            },
            {
                "id": 103,
                "origin_id": 6,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 0,
                "type": "CONDITIONING",
            },
            {
                "id": 104,
                "origin_id": 7,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 1,
                "type": "CONDITIONING",
            },
        ],
    }
    ui["nodes"] = [n for n in ui["nodes"] if n["id"] not in (6, 7)]
    ui["nodes"].append(
        {
            "id": 20,
            "type": sub_id,
            "mode": 0,
            "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
            "outputs": [{"name": "positive", "links": [4]}, {"name": "negative", "links": [6]}],
        }
    )
    ui["links"] = [
        _link(1, 4, 0, 3, 0, "MODEL"),
        _link(2, 5, 0, 3, 3, "LATENT"),
        _link(3, 4, 1, 20, 0, "CLIP"),
        _link(4, 20, 0, 3, 1, "CONDITIONING"),
        _link(6, 20, 1, 3, 2, "CONDITIONING"),
        _link(7, 3, 0, 8, 0, "LATENT"),
        _link(8, 4, 2, 8, 1, "VAE"),
        _link(9, 8, 0, 9, 0, "IMAGE"),
    ]
    ui["definitions"] = {"subgraphs": [definition]}
    return ui


def test_subgraphs_are_flattened_with_their_inputs_and_outputs(studio_object_info):
    object_info = studio_object_info
    api = ui_to_api(_as_subgraph(_default_json()), object_info)
    assert "20" not in api
    assert api["20:6"]["inputs"] == {"text": "a castle on a hill", "clip": ["4", 1]}
    assert api["20:7"]["inputs"]["clip"] == ["4", 1]
    assert api["3"]["inputs"]["positive"] == ["20:6", 0]
    assert api["3"]["inputs"]["negative"] == ["20:7", 0]
    validate_graph(api, object_info)
    assert extract_params(api).positive == "a castle on a hill"


def test_a_muted_subgraph_feeds_nothing(object_info):
    ui = _as_subgraph(_default_json())
    ui["nodes"][-1]["mode"] = 2
    api = ui_to_api(ui, object_info)
    assert "positive" not in api["3"]["inputs"] and "negative" not in api["3"]["inputs"]
    assert not any(node_id.startswith("20") for node_id in api)


def test_widgets_saved_by_another_node_version_are_realigned_and_noted(object_info):
    ui = _default_json()
    # An older KSampler save without the control slot: "randomize" would land nowhere and
    # 20 (steps) would land in the control slot; by type every value finds its widget.
    ui["nodes"][4]["widgets_values"] = [7, 20, 8.0, "euler", "normal", 1.0]
    notes: list[str] = []
    api = ui_to_api(ui, object_info, notes=notes)
    inputs = api["3"]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"]) == (7, 20, 8.0)
    assert (inputs["sampler_name"], inputs["denoise"]) == ("euler", 1.0)
    assert len(notes) == 1 and notes[0].startswith("node 3 (KSampler): widget values")
    assert "realigned by type" in notes[0]


def test_a_cycle_is_named(object_info):
    ui = _default_json()
    # The decoded image fed back as the sampler's latent (types aside): a loop.
    ui["links"].append(_link(10, 8, 0, 3, 3, "LATENT"))
    ui["nodes"][4]["inputs"][3]["link"] = 10
    with pytest.raises(UIImportError, match=r"node \d \(\w+\): its inputs form a cycle"):
        ui_to_api(ui, object_info)


def test_a_link_from_a_missing_node_is_named(object_info):
    ui = _default_json()
    ui["links"][0] = _link(1, 44, 0, 3, 0, "MODEL")
    with pytest.raises(
        UIImportError,
        match="node 3 \\(KSampler\\) input 'model': link 1 comes "
        "from node 44, which is not in the workflow",
    ):
        ui_to_api(ui, object_info)
