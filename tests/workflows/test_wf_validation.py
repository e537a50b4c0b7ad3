"""Validation against a real server's /object_info, all problems reported together."""

from __future__ import annotations

import json

import pytest

from workflows import (
    GraphValidationError,
    custom_node_definitions,
    find_problems,
    render_template,
    validate_graph,
)
from workflows.templating import list_templates, load_template

TEMPLATES = list_templates()


def _by_kind(problems):
    found: dict[str, list] = {}
    for problem in problems:
        found.setdefault(problem.kind, []).append(problem)
    return found


def test_preview_validates_cleanly_against_the_real_catalogue(object_info, full_params):
    assert len(object_info) == 496
    for params in ({"seed": 0}, full_params["preview"], {"seed": 2**64 - 1, "frames": 1024}):
        validate_graph(render_template("preview", params), object_info, template="preview")


def test_every_kind_of_problem_is_reported_together(object_info):
    graph = {
        # width below min, height of the wrong type, batch_size missing, a made-up input
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 0, "height": "tall", "color": 0, "colour": 3},
        },
        # a link to a node that does not exist; a V3 combo ("COMBO", {"options"}) value not listed
        "2": {
            "class_type": "ImageBlend",
            "inputs": {
                "image1": ["1", 0],
                "image2": ["99", 0],
                "blend_factor": 0.5,
                "blend_mode": "glow",
            },
        },
        # output index out of range; classic combo ([[...], {...}]) value not listed
        "3": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 3],
                "upscale_method": "magic",
                "width": 64,
                "height": 64,
                "crop": "disabled",
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {"class_type": "NoSuchNode", "inputs": {"x": ["77", 0]}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "not_there.png"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
        # MODEL given where LATENT is expected
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["4", 2]}},
        "9": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
        "10": {"class_type": "ImageInvert", "inputs": {"image": ["9", 0]}},
    }
    with pytest.raises(GraphValidationError) as err:
        validate_graph(graph, object_info, template="my_graph")
    found = _by_kind(err.value.problems)

    def one(kind, node_id, input_name=None):
        matches = [p for p in found.get(kind, []) if p.node_id == node_id]
        if input_name is not None:
            matches = [p for p in matches if p.input_name == input_name]
        assert matches, f"no {kind} problem on node {node_id} input {input_name}"
        assert all(p.template == "my_graph" for p in matches)
        return matches[0]

    assert "smaller than the minimum 1" in one("out_of_range", "1", "width").message
    assert one("invalid_type", "1", "height").class_type == "EmptyImage"
    assert one("missing_input", "1", "batch_size")
    assert one("unknown_input", "1", "colour")
    assert "'99'" in one("bad_link", "2", "image2").message
    assert "glow" in one("not_in_list", "2", "blend_mode").message
    assert "1 output(s)" in one("bad_link", "3", "image").message
    assert "magic" in one("not_in_list", "3", "upscale_method").message
    missing_model = one("missing_model_file", "4", "ckpt_name")
    assert "sd15.safetensors" in missing_model.message and "offers none" in missing_model.message
    assert one("unknown_node_type", "5").class_type == "NoSuchNode"
    assert one("bad_link", "5", "x")  # links of unknown nodes are still checked
    assert "upload" in one("missing_input_file", "6", "image").message
    assert "LATENT" in one("link_type_mismatch", "8", "samples").message
    assert one("cycle", "9") or one("cycle", "10")
    # Everything is in one message, each line naming template, node, class and input.
    text = str(err.value)
    assert "nothing was queued" in text
    assert "template 'my_graph', node 1 (EmptyImage), input 'width'" in text
    assert "template 'my_graph', node 5 (NoSuchNode): node type 'NoSuchNode'" in text
    assert len(err.value.problems) == len(text.splitlines()) - 1


def test_valid_values_in_both_combo_encodings_pass(object_info):
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "ImageBlend",
            "inputs": {
                "image1": ["1", 0],
                "image2": ["1", 0],
                "blend_factor": 0.3,
                "blend_mode": "screen",
            },
        },
        "3": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["2", 0],
                "upscale_method": "lanczos",
                "width": 32,
                "height": 32,
                "crop": "center",
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    assert find_problems(graph, object_info) == []


def test_graph_without_output_node_is_refused(object_info):
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        }
    }
    problems = find_problems(graph, object_info)
    assert [p.kind for p in problems] == ["no_outputs"]


def test_malformed_graphs_are_problems_not_crashes(object_info):
    assert find_problems([], object_info)[0].kind == "malformed_graph"
    assert find_problems({}, object_info)[0].kind == "malformed_graph"
    problems = find_problems(
        {"1": {"inputs": {}}, "2": {"class_type": "SaveImage", "inputs": 3}}, object_info
    )
    assert [(p.kind, p.node_id) for p in problems] == [
        ("malformed_node", "1"),
        ("malformed_node", "2"),
    ]


def test_keyframe_against_a_core_only_server_names_missing_nodes_and_models(
    object_info, full_params
):
    graph = render_template("keyframe", full_params["keyframe"])
    with pytest.raises(GraphValidationError) as err:
        validate_graph(graph, object_info, template="keyframe")
    found = _by_kind(err.value.problems)
    unknown = {(p.node_id, p.class_type) for p in found["unknown_node_type"]}
    assert unknown == {("7", "IPAdapterUnifiedLoaderFaceID"), ("8", "IPAdapterFaceID")}
    models = {(p.node_id, p.input_name) for p in found["missing_model_file"]}
    assert models == {
        ("1", "ckpt_name"),
        ("2", "lora_name"),
        ("3", "lora_name"),
        ("9", "control_net_name"),
    }
    text = str(err.value)
    expected = "template 'keyframe', node 8 (IPAdapterFaceID): node type 'IPAdapterFaceID'"
    assert f"{expected} is not installed" in text
    assert "model file 'anything-v5.safetensors' is not on the server" in text


def test_missing_input_files_can_be_ignored_when_uploaded_later(object_info):
    catalogue = {**object_info, **custom_node_definitions()}
    graph = render_template("svd_img2vid", {"seed": 1, "init_image": "fresh_keyframe.png"})
    kinds = {p.kind for p in find_problems(graph, catalogue)}
    assert kinds == {"missing_model_file", "missing_input_file"}
    with pytest.raises(GraphValidationError) as err:
        validate_graph(graph, catalogue, ignore={"missing_input_file"})
    assert {p.kind for p in err.value.problems} == {"missing_model_file"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_validates_on_a_provisioned_studio_server(
    name, studio_object_info, full_params
):
    validate_graph(render_template(name, full_params[name]), studio_object_info, template=name)
    required = {
        p: v for p, v in full_params[name].items() if load_template(name).parameters[p].required
    }
    validate_graph(render_template(name, required), studio_object_info, template=name)


@pytest.mark.parametrize("name", TEMPLATES)
def test_manifest_ranges_and_choices_stay_inside_what_the_server_accepts(
    name, studio_object_info, full_params
):
    """Any value a manifest allows must pass the server: render at each bound and choice."""
    base = full_params[name]
    for pname, spec in load_template(name).parameters.items():
        candidates: list = []
        if spec.type in ("int", "float"):
            candidates = [v for v in (spec.min, spec.max) if v is not None]
        elif spec.choices:
            candidates = list(spec.choices)
        for value in candidates:
            graph = render_template(name, {**base, pname: value})
            problems = find_problems(graph, studio_object_info, template=name)
            assert problems == [], f"{pname}={value!r}: {[str(p) for p in problems]}"


def test_render_with_object_info_validates_before_returning(object_info):
    with pytest.raises(GraphValidationError) as err:
        render_template("animatediff_loop", {"seed": 1, "positive": "x"}, object_info=object_info)
    unknown = {p.class_type for p in err.value.problems if p.kind == "unknown_node_type"}
    assert unknown == {"ADE_AnimateDiffLoaderGen1", "ADE_LoopedUniformContextOptions"}
    assert err.value.template == "animatediff_loop"
    graph = render_template("preview", {"seed": 1}, object_info=object_info)
    assert graph["2"]["inputs"]["seed"] == 1


def test_wrapped_single_node_sample_is_accepted(samples_dir):
    wrapped = json.loads((samples_dir / "object_info_EmptyImage.json").read_text())
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0},
        }
    }
    problems = find_problems(graph, wrapped)
    assert [(p.kind, p.input_name) for p in problems] == [
        ("out_of_range", "width"),
        ("no_outputs", None),
    ]
