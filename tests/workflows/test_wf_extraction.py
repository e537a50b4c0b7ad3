"""Parameter extraction from templates and from graphs users bring (custom nodes included)."""

from __future__ import annotations

import pytest

from workflows import GraphParams, extract_params, render_template


def test_keyframe_parameters_come_back_as_rendered(full_params):
    params = extract_params(render_template("keyframe", full_params["keyframe"]))
    assert isinstance(params, GraphParams)
    assert params.seed == 11 and params.seeds == {"13.seed": 11}
    assert params.checkpoint == "anything-v5.safetensors"
    assert (params.sampler, params.scheduler, params.steps) == ("dpmpp_2m", "karras", 24)
    assert (params.cfg, params.denoise) == (6.5, 1.0)
    assert (params.width, params.height, params.frames) == (640, 896, 1)
    assert params.positive == "mika, silver hair, red eyes, school rooftop at dusk"
    assert params.negative == "lowres"
    assert [(lo.name, lo.strength_model, lo.strength_clip) for lo in params.loras] == [
        ("mika.safetensors", 0.8, 0.7),
        ("watercolor.safetensors", 0.5, 0.4),
    ]
    [controlnet] = params.controlnets
    assert controlnet.model == "control_v11p_sd15_openpose.pth"
    assert (controlnet.strength, controlnet.start_percent, controlnet.end_percent) == (
        0.7,
        0.0,
        0.8,
    )
    assert controlnet.image == "pose.png"
    [identity] = params.ipadapters
    assert identity.class_type == "IPAdapterFaceID"
    assert (identity.weight, identity.weight_faceidv2) == (0.9, 1.0)
    assert identity.preset == "FACEID PLUS V2" and identity.weight_type == "linear"
    assert (identity.start_at, identity.end_at) == (0.0, 1.0)
    assert identity.image == "mika_face.png" and identity.lora_strength == 0.6
    assert params.input_images == ["mika_face.png", "pose.png"]


def test_keyframe_without_extras_has_no_loras_controlnets_or_identity():
    params = extract_params(render_template("keyframe", {"seed": 4, "positive": "sky"}))
    assert params.loras == [] and params.controlnets == [] and params.ipadapters == []
    assert params.positive == "sky" and params.seed == 4


def test_character_sheet_reads_the_first_view_and_every_seed(full_params):
    params = extract_params(render_template("character_sheet", full_params["character_sheet"]))
    assert params.seeds == {f"{n}.seed": 11 for n in (12, 13, 14, 15)}
    assert len(params.samplers) == 4
    assert params.positive.startswith("mika, silver hair, red eyes, school uniform, front view")
    assert params.ipadapters[0].preset == "PLUS FACE (portraits)"
    assert params.ipadapters[0].image == "mika_face.png"
    assert [lo.name for lo in params.loras] == ["mika.safetensors"]


def test_animatediff_loop_reports_motion_module_and_context(full_params):
    params = extract_params(render_template("animatediff_loop", full_params["animatediff_loop"]))
    assert params.motion_module == "mm_sd_v15_v2.ckpt"
    [motion] = params.animatediff
    assert (motion.context_length, motion.context_overlap, motion.closed_loop) == (16, 4, True)
    assert motion.beta_schedule == "autoselect"
    assert (params.frames, params.fps) == (16, 8.0)
    assert params.positive == "mika waving, hair swaying in the wind"


def test_svd_reports_frames_fps_and_start_frame(full_params):
    params = extract_params(render_template("svd_img2vid", full_params["svd_img2vid"]))
    assert (params.width, params.height, params.frames, params.fps) == (1024, 576, 14, 7.0)
    assert params.checkpoint == "svd_xt.safetensors"
    assert params.positive is None  # SVD conditions on the image, not on text
    assert params.input_images == ["keyframe.png"]


def test_model_free_preview_still_yields_seed_size_and_frames(full_params):
    params = extract_params(render_template("preview", full_params["preview"]))
    assert params.seed == 11
    assert (params.width, params.height, params.frames, params.fps) == (96, 64, 4, 12.0)
    assert params.checkpoint is None and params.samplers == []


def test_user_graph_with_unknown_custom_nodes(load_fixture):
    graph = load_fixture("api_user_graph_custom_nodes.json")
    params = extract_params(graph)
    # The seed goes through rgthree's seed node into RandomNoise of SamplerCustomAdvanced;
    # FaceDetailer (Impact pack) also samples but works on the image afterwards.
    assert params.seed == 8675309
    assert params.seeds == {"3.seed": 123, "7.seed": 8675309, "8.noise_seed": 8675309}
    assert (params.sampler, params.scheduler, params.steps) == (
        "euler_ancestral",
        "sgm_uniform",
        30,
    )
    assert (params.cfg, params.denoise) == (5.5, 1.0)
    assert params.positive == "1girl, silver hair, rooftop at dusk"  # from "CR Prompt Text"
    assert params.negative == "lowres, watermark"
    assert params.checkpoint == "animagineXL_v31.safetensors"
    assert (params.width, params.height, params.frames) == (832, 1216, 1)
    assert [
        (lo.class_type, lo.name, lo.strength_model, lo.strength_clip) for lo in params.loras
    ] == [
        ("Power Lora Loader (rgthree)", "hero_sdxl.safetensors", 0.9, 0.9),
        ("LoraLoaderModelOnly", "detail_tweaker.safetensors", 0.4, None),
    ]  # the switched-off rgthree LoRA is not reported
    [controlnet] = params.controlnets
    assert controlnet.model == "controlnet-canny-sdxl.safetensors"
    assert (controlnet.strength, controlnet.end_percent) == (0.55, 0.6)
    assert (controlnet.image, controlnet.preprocessor) == ("layout.png", "Canny")
    [ipadapter] = params.ipadapters
    assert (ipadapter.weight, ipadapter.weight_type, ipadapter.end_at) == (
        0.7,
        "style transfer",
        0.8,
    )
    assert (ipadapter.preset, ipadapter.image) == ("PLUS (high strength)", "hero_ref.png")
    assert {"FaceDetailer", "Seed (rgthree)", "CR Prompt Text"} <= set(params.class_types)
    assert [s.class_type for s in params.samplers] == ["FaceDetailer", "SamplerCustomAdvanced"]


def test_hires_fix_second_pass_is_not_taken_for_the_main_sampler():
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "castle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 2},
        },
        "5": {
            "class_type": "LatentUpscaleBy",
            "inputs": {"samples": ["9", 0], "upscale_method": "nearest-exact", "scale_by": 1.5},
        },
        "6": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": 2,
                "steps": 12,
                "cfg": 5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["5", 0],
                "denoise": 0.45,
            },
        },
        "9": {
            "class_type": "KSamplerAdvanced",
            "inputs": {
                "model": ["1", 0],
                "add_noise": "enable",
                "noise_seed": 1,
                "steps": 25,
                "cfg": 7,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "start_at_step": 0,
                "end_at_step": 25,
                "return_with_leftover_noise": "disable",
            },
        },
    }
    params = extract_params(graph)
    assert (params.seed, params.steps, params.sampler) == (1, 25, "dpmpp_2m")
    assert params.denoise is None  # KSamplerAdvanced works in steps, not denoise
    assert (params.width, params.height, params.frames) == (512, 512, 2)
    assert params.negative == ""
    assert params.seeds == {"6.seed": 2, "9.noise_seed": 1}


def test_broken_and_odd_nodes_do_not_break_extraction():
    graph = {
        "1": "not a node",
        "2": {
            "class_type": "KSampler",
            "inputs": {"seed": ["404", 0], "steps": 20, "positive": ["2", 0]},
        },
        "3": {"inputs": {}},
        "4": {"class_type": "Mystery", "inputs": {"x": {"nested": [1, 2]}, "lora_name": 5}},
    }
    params = extract_params(graph)
    assert params.seed is None and params.steps == 20 and params.positive is None
    assert params.class_types == ["KSampler", "Mystery"]


def test_editor_format_is_refused_with_a_pointer_to_ui_to_api(load_fixture):
    with pytest.raises(ValueError, match="ui_to_api"):
        extract_params(load_fixture("ui_preview_frontend_1_27.json"))
    with pytest.raises(ValueError, match="JSON object"):
        extract_params(["not", "a", "graph"])


def test_params_serialise_for_storage(full_params):
    params = extract_params(render_template("keyframe", full_params["keyframe"]))
    restored = GraphParams.model_validate_json(params.model_dump_json())
    assert restored == params
