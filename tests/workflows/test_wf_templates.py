"""Templates: listing, rendering with bound parameters, and clear errors on bad parameters."""

from __future__ import annotations

import os
import shutil

import pytest

from workflows import (
    ManifestError,
    TemplateParameterError,
    UnknownTemplateError,
    graph_sha256,
    is_link,
    list_templates,
    load_template,
    render_template,
    template_manifest,
)
from workflows.templating import TEMPLATES_DIR

TEMPLATES = ["animatediff_loop", "character_sheet", "keyframe", "preview", "svd_img2vid"]


def _bound_values(graph: dict, spec) -> list:
    return [graph[b.node]["inputs"][b.input] for b in spec.bind if b.node in graph]


def test_lists_the_five_studio_templates():
    assert list_templates() == TEMPLATES


@pytest.mark.parametrize("name", TEMPLATES)
def test_manifest_describes_the_template(name):
    template = load_template(name)
    manifest = template.manifest
    assert manifest.name == name and manifest.version >= 1 and manifest.description
    assert manifest.phase in {"concept", "generation", "animation", "any"}
    assert set(manifest.output_nodes) <= set(template.graph)
    assert "seed" in manifest.parameters and manifest.parameters["seed"].required
    for spec in manifest.parameters.values():
        assert spec.description


@pytest.mark.parametrize("name", TEMPLATES)
def test_render_binds_every_given_parameter(name, full_params):
    params = full_params[name]
    graph = render_template(name, params)
    specs = load_template(name).parameters
    for pname, value in params.items():
        spec = specs[pname]
        if spec.type in ("loras", "controlnet"):
            continue
        written = _bound_values(graph, spec)
        assert written, f"{name}.{pname} bound nowhere in the rendered graph"
        for binding, got in zip(spec.bind, written, strict=True):
            if binding.transform is None and binding.format is None:
                assert got == value, f"{name}.{pname} -> node {binding.node}.{binding.input}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_render_sets_the_seed_at_every_seed_input(name, full_params):
    for seed in (0, 7, 2**64 - 1):
        graph = render_template(name, {**full_params[name], "seed": seed})
        seeds = [
            node["inputs"][key]
            for node in graph.values()
            for key in ("seed", "noise_seed")
            if key in node["inputs"] and not is_link(node["inputs"][key])
        ]
        assert seeds and all(s == seed for s in seeds)


def test_one_seed_parameter_fills_all_four_character_sheet_samplers(full_params):
    graph = render_template("character_sheet", full_params["character_sheet"])
    samplers = {nid: n for nid, n in graph.items() if n["class_type"] == "KSampler"}
    assert len(samplers) == 4
    assert {n["inputs"]["seed"] for n in samplers.values()} == {11}
    views = [graph[n["inputs"]["positive"][0]]["inputs"]["text"] for n in samplers.values()]
    assert all(v.startswith("mika, silver hair, red eyes, school uniform, ") for v in views)
    assert len(set(views)) == 4  # front, three-quarter, side, back


def test_defaults_overwrite_values_saved_in_the_template_graph():
    graph = render_template("keyframe", {"seed": 1, "positive": "a"})
    # The template file carries a stale seed and empty prompts; rendering must not keep them.
    assert graph["13"]["inputs"]["seed"] == 1
    assert graph["4"]["inputs"]["text"] == "a"
    assert graph["5"]["inputs"]["text"].startswith("lowres, bad anatomy")


def test_rendering_is_deterministic_and_leaves_the_template_untouched(full_params):
    before = load_template("keyframe").graph
    first = render_template("keyframe", full_params["keyframe"])
    second = render_template("keyframe", full_params["keyframe"])
    assert graph_sha256(first) == graph_sha256(second)
    assert load_template("keyframe").graph == before


def test_a_template_edited_on_disk_is_read_anew_and_a_loaded_copy_changes_nothing(tmp_path):
    root = _copy_templates(tmp_path)
    assert template_manifest("preview", directory=root).version == 1
    mine = load_template("preview", directory=root)
    mine.manifest.version = 7  # a caller's own copy
    mine.parameters["frames"].default = 2
    assert template_manifest("preview", directory=root).version == 1
    assert render_template("preview", {"seed": 1}, directory=root) == render_template(
        "preview", {"seed": 1}
    )
    manifest = root / "preview.manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1", "version: 2"))
    stamp = manifest.stat().st_mtime_ns + 1_000_000  # a new stamp even on a coarse clock
    os.utime(manifest, ns=(stamp, stamp))
    assert template_manifest("preview", directory=root).version == 2


def test_preview_colour_and_grain_follow_the_seed():
    a = render_template("preview", {"seed": 1})
    a_again = render_template("preview", {"seed": 1})
    b = render_template("preview", {"seed": 2})
    assert a == a_again
    assert a["1"]["inputs"]["color"] != b["1"]["inputs"]["color"]
    assert a["2"]["inputs"]["seed"] == 1 and b["2"]["inputs"]["seed"] == 2
    assert 0 <= a["1"]["inputs"]["color"] <= 0xFFFFFF
    assert graph_sha256(a) != graph_sha256(b)


def test_preview_prefix_formats_each_output():
    graph = render_template("preview", {"seed": 1, "filename_prefix": "ep01_smoke"})
    assert graph["4"]["inputs"]["filename_prefix"] == "ep01_smoke_frame"
    assert graph["5"]["inputs"]["filename_prefix"] == "ep01_smoke_clip"


def test_keyframe_with_everything_enabled_keeps_identity_loras_and_controlnet(full_params):
    graph = render_template("keyframe", full_params["keyframe"])
    assert graph["2"]["inputs"]["lora_name"] == "mika.safetensors"
    assert graph["2"]["inputs"]["strength_clip"] == 0.7
    assert graph["3"]["inputs"]["lora_name"] == "watercolor.safetensors"
    assert graph["6"]["inputs"]["image"] == "mika_face.png"
    assert graph["8"]["inputs"]["weight"] == 0.9
    assert graph["9"]["inputs"]["control_net_name"] == "control_v11p_sd15_openpose.pth"
    assert graph["10"]["inputs"]["image"] == "pose.png"
    assert graph["11"]["inputs"]["strength"] == 0.7
    assert graph["11"]["inputs"]["end_percent"] == 0.8
    assert graph["13"]["inputs"]["model"] == ["8", 0]
    assert graph["13"]["inputs"]["positive"] == ["11", 0]


def test_keyframe_without_optional_parts_is_a_plain_txt2img():
    graph = render_template("keyframe", {"seed": 3, "positive": "rooftop"})
    classes = sorted(n["class_type"] for n in graph.values())
    assert classes == sorted(
        [
            "CheckpointLoaderSimple",
            "CLIPTextEncode",
            "CLIPTextEncode",
            "EmptyLatentImage",
            "KSampler",
            "VAEDecode",
            "SaveImage",
        ]
    )
    # Bypassed LoRAs, FaceID and ControlNet are rewired around, not left dangling.
    assert graph["13"]["inputs"]["model"] == ["1", 0]
    assert graph["4"]["inputs"]["clip"] == ["1", 1]
    assert graph["13"]["inputs"]["positive"] == ["4", 0]
    assert graph["13"]["inputs"]["negative"] == ["5", 0]


def test_one_lora_of_two_slots_bypasses_the_second():
    graph = render_template(
        "keyframe", {"seed": 3, "positive": "x", "loras": [{"name": "mika.safetensors"}]}
    )
    assert "2" in graph and "3" not in graph
    assert graph["4"]["inputs"]["clip"] == ["2", 1]
    assert graph["13"]["inputs"]["model"] == ["2", 0]


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(UnknownTemplateError) as err:
        render_template("turnaround", {"seed": 1})
    message = str(err.value)
    assert "'turnaround'" in message
    for name in TEMPLATES:
        assert name in message


def test_template_names_cannot_escape_the_templates_folder():
    with pytest.raises(UnknownTemplateError):
        load_template("../templates/preview")


def test_unknown_parameter_is_named_with_the_template():
    with pytest.raises(TemplateParameterError) as err:
        render_template("preview", {"seed": 1, "stepz": 20})
    assert err.value.template == "preview" and err.value.parameter == "stepz"
    assert "preview" in str(err.value) and "stepz" in str(err.value)
    assert "frames" in str(err.value)  # lists what the template does take


@pytest.mark.parametrize(
    ("name", "params", "parameter", "fragment"),
    [
        ("keyframe", {"seed": 1, "positive": "x", "steps": "20"}, "steps", "expected int"),
        ("keyframe", {"seed": 1, "positive": "x", "steps": 20.5}, "steps", "non-integer"),
        ("keyframe", {"seed": 1, "positive": "x", "cfg": True}, "cfg", "expected float"),
        ("keyframe", {"seed": 1, "positive": 42}, "positive", "expected str"),
        ("keyframe", {"seed": "1", "positive": "x"}, "seed", "expected int"),
        ("keyframe", {"seed": -1, "positive": "x"}, "seed", "below the minimum 0"),
        ("keyframe", {"seed": 2**64, "positive": "x"}, "seed", "above the maximum"),
        ("keyframe", {"seed": 1, "positive": "x", "width": 8}, "width", "below the minimum 64"),
        (
            "keyframe",
            {"seed": 1, "positive": "x", "faceid_preset": "BEST"},
            "faceid_preset",
            "not one of",
        ),
        (
            "keyframe",
            {"seed": 1, "positive": "x", "reference_image": "../../etc/passwd"},
            "reference_image",
            "not a path",
        ),
        (
            "keyframe",
            {"seed": 1, "positive": "x", "loras": [{"name": "a"}] * 3},
            "loras",
            "2 LoRA slot",
        ),
        (
            "keyframe",
            {"seed": 1, "positive": "x", "loras": [{"strength_model": 1}]},
            "loras",
            "name",
        ),
        (
            "keyframe",
            {"seed": 1, "positive": "x", "controlnet": {"name": "c.pth"}},
            "controlnet",
            "image",
        ),
        (
            "animatediff_loop",
            {"seed": 1, "positive": "x", "closed_loop": "yes"},
            "closed_loop",
            "expected bool",
        ),
        ("preview", {"seed": 1, "fps": float("nan")}, "fps", "finite"),
        ("preview", {}, "seed", "required"),
        ("keyframe", {"seed": 1}, "positive", "required"),
        ("svd_img2vid", {"seed": 1}, "init_image", "required"),
    ],
)
def test_bad_parameter_values_name_template_and_parameter(name, params, parameter, fragment):
    with pytest.raises(TemplateParameterError) as err:
        render_template(name, params)
    assert err.value.template == name
    assert err.value.parameter == parameter
    assert fragment in str(err.value)
    assert f"template {name!r}, parameter {parameter!r}" in str(err.value)


def test_integral_float_is_accepted_for_int_parameters():
    graph = render_template("preview", {"seed": 5.0, "frames": 3.0})
    assert graph["2"]["inputs"]["seed"] == 5 and isinstance(graph["2"]["inputs"]["seed"], int)
    assert graph["1"]["inputs"]["batch_size"] == 3


def _copy_templates(tmp_path):
    for path in TEMPLATES_DIR.iterdir():
        if path.suffix in (".json", ".yaml"):
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_manifest_binding_to_a_missing_node_is_reported(tmp_path):
    root = _copy_templates(tmp_path)
    manifest = root / "preview.manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            'bind: [{node: "3", input: blur_radius}]', 'bind: [{node: "99", input: blur_radius}]'
        )
    )
    with pytest.raises(ManifestError) as err:
        render_template("preview", {"seed": 1}, directory=root)
    message = str(err.value)
    assert "'preview'" in message and "blur_radius" in message and "99" in message


def test_manifest_must_bind_every_seed(tmp_path):
    root = _copy_templates(tmp_path)
    manifest = root / "preview.manifest.yaml"
    manifest.write_text(manifest.read_text().replace('      - {node: "2", input: seed}\n', ""))
    with pytest.raises(ManifestError) as err:
        load_template("preview", directory=root)
    assert "node 2 (ImageAddNoise) input 'seed' is not bound" in str(err.value)


def test_malformed_manifest_names_file_and_field(tmp_path):
    root = _copy_templates(tmp_path)
    manifest = root / "svd_img2vid.manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1", "version: first"))
    with pytest.raises(ManifestError) as err:
        load_template("svd_img2vid", directory=root)
    assert "svd_img2vid.manifest.yaml" in str(err.value) and "version" in str(err.value)


def test_manifest_default_outside_its_own_range_is_rejected(tmp_path):
    root = _copy_templates(tmp_path)
    manifest = root / "preview.manifest.yaml"
    manifest.write_text(manifest.read_text().replace("default: 16\n", "default: 5000\n"))
    with pytest.raises(ManifestError) as err:
        load_template("preview", directory=root)
    assert "parameter 'frames'" in str(err.value) and "5000" in str(err.value)
