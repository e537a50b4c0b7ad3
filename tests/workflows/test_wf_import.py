"""`anime workflow import` / `list`: the studio's workflows become templates the renderer finds."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from anime.cli import app
from workflows import list_templates, load_template, render_template
from workflows.sources import MAX_FILE_BYTES

runner = CliRunner()


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "studio-templates"
    monkeypatch.setenv("ANIME_TEMPLATES_DIR", str(folder))
    return folder


@pytest.fixture
def catalogue_file(tmp_path: Path, studio_object_info) -> Path:
    path = tmp_path / "object_info.json"
    path.write_text(json.dumps(studio_object_info), encoding="utf-8")
    return path


def invoke(*args: str):
    return runner.invoke(app, ["workflow", *args])


def import_(path: Path, catalogue_file: Path, *extra: str):
    return invoke("import", str(path), "--object-info", str(catalogue_file), *extra)


def default_ui(load_fixture) -> dict:
    return load_fixture("ui_default_templates_0_1_95.json")


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def png_with(chunks: dict[str, str]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    text = b"".join(chunk(b"tEXt", k.encode() + b"\0" + v.encode()) for k, v in chunks.items())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
        + chunk(b"IEND", b"")
    )


def test_editor_workflow_becomes_a_studio_template_the_renderer_finds(
    studio, catalogue_file, tmp_path, load_fixture
):
    source = write_json(tmp_path / "Castle Shot.json", default_ui(load_fixture))
    result = import_(source, catalogue_file, "--phase", "concept")
    assert result.exit_code == 0, result.output
    assert "imported: castle_shot v1" in result.output
    for line in (
        "seed               node 3 input seed",
        "positive           node 6 input text",
        "negative           node 7 input text",
        "checkpoint         node 4 input ckpt_name",
        "frames             node 5 input batch_size",
        "outputs: 9",
        'node 9 input filename_prefix = "ComfyUI"',
    ):
        assert line in result.output
    assert sorted(p.name for p in studio.iterdir()) == [
        "castle_shot.import.json", "castle_shot.json", "castle_shot.manifest.yaml",
    ]  # fmt: skip
    assert "castle_shot" in list_templates() and "keyframe" in list_templates()
    manifest = load_template("castle_shot").manifest
    assert (manifest.phase, manifest.kind, manifest.version) == ("concept", "image", 1)
    graph = render_template("castle_shot", {"seed": 5, "positive": "a lighthouse", "steps": 12})
    assert graph["3"]["inputs"]["seed"] == 5 and graph["3"]["inputs"]["steps"] == 12
    assert graph["6"]["inputs"]["text"] == "a lighthouse"
    listing = invoke("list")
    row = next(line for line in listing.output.splitlines() if line.startswith("castle_shot"))
    assert row.split()[:3] == ["castle_shot", "studio", "1"]
    assert next(ln for ln in listing.output.splitlines() if ln.startswith("keyframe")).split()[
        1
    ] == ("shipped")


def test_same_file_twice_is_the_same_template_and_a_changed_one_bumps_the_version(
    studio, catalogue_file, tmp_path, load_fixture
):
    ui = default_ui(load_fixture)
    source = write_json(tmp_path / "castle.json", ui)
    assert import_(source, catalogue_file).exit_code == 0
    first = (studio / "castle.json").read_text()
    again = import_(source, catalogue_file)
    assert "unchanged: castle v1" in again.output
    assert (studio / "castle.json").read_text() == first
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] = 30  # steps
    write_json(source, ui)
    changed = import_(source, catalogue_file)
    assert "updated: castle v2" in changed.output, changed.output
    assert load_template("castle").manifest.parameters["steps"].default == 30


def test_user_edits_to_the_manifest_survive_a_reimport(
    studio, catalogue_file, tmp_path, load_fixture
):
    ui = default_ui(load_fixture)
    source = write_json(tmp_path / "castle.json", ui)
    assert import_(source, catalogue_file).exit_code == 0
    path = studio / "castle.manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["description"] = "Castle establishing shot, studio look."
    manifest["parameters"]["steps"]["max"] = 40
    del manifest["parameters"]["denoise"]  # the studio wants denoise fixed
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    next(n for n in ui["nodes"] if n["type"] == "KSampler")["widgets_values"][3] = 6.5  # cfg
    write_json(source, ui)
    result = import_(source, catalogue_file)
    assert "updated: castle v2" in result.output and "your manifest edits kept" in result.output
    kept = load_template("castle").manifest
    assert kept.description == "Castle establishing shot, studio look."
    assert kept.parameters["steps"].max == 40 and "denoise" not in kept.parameters
    assert kept.parameters["cfg"].default == 6.5  # the new graph's value still comes through


def test_an_imported_template_overrides_the_shipped_one_of_that_name(
    studio, catalogue_file, tmp_path, load_fixture
):
    source = write_json(tmp_path / "castle.json", default_ui(load_fixture))
    assert import_(source, catalogue_file, "--name", "keyframe").exit_code == 0
    assert load_template("keyframe").graph["3"]["class_type"] == "KSampler"
    assert "reference_image" not in load_template("keyframe").parameters
    row = next(ln for ln in invoke("list").output.splitlines() if ln.startswith("keyframe"))
    assert row.split()[1] == "studio"


def test_png_with_embedded_prompt_and_workflow_imports(
    studio, catalogue_file, tmp_path, load_fixture, studio_object_info
):
    from workflows import ui_to_api

    ui = default_ui(load_fixture)
    api = ui_to_api(ui, studio_object_info)
    png = tmp_path / "ComfyUI_00001_.png"
    png.write_bytes(png_with({"prompt": json.dumps(api), "workflow": json.dumps(ui)}))
    result = invoke("import", str(png), "--kind", "image")  # the API graph needs no catalogue
    assert result.exit_code == 0, result.output
    assert "imported: comfyui_00001 v1" in result.output and "[api (png)]" in result.output
    assert load_template("comfyui_00001").graph["3"]["inputs"]["steps"] == 20


def test_keyframe_save_binds_loras_controlnet_and_outputs(studio, catalogue_file, load_fixture,
                                                          tmp_path):  # fmt: skip
    source = write_json(tmp_path / "kf.json", load_fixture("ui_keyframe_lora_controlnet.json"))
    result = import_(source, catalogue_file)
    assert result.exit_code == 0, result.output
    params = load_template("kf").parameters
    assert [b.node for b in params["loras"].bind] == ["10"]  # the bypassed LoRA is gone
    assert params["loras"].default[0]["name"] == "hero_character.safetensors"
    assert params["controlnet"].default["name"] == "control_v11p_sd15_openpose.pth"
    assert params["controlnet"].default["end_percent"] == 0.85
    assert params["seed"].required and params["positive"].bind[0].node == "6"


def test_a_folder_import_prints_a_summary_of_imported_and_refused(
    studio, catalogue_file, tmp_path, load_fixture
):
    folder = tmp_path / "studio-workflows"
    folder.mkdir()
    write_json(folder / "castle.json", default_ui(load_fixture))
    write_json(folder / "notes.json", {"title": "not a workflow"})
    (folder / "thumb.png").write_bytes(png_with({}))
    result = invoke("import", str(folder), "--object-info", str(catalogue_file))
    assert result.exit_code == 0, result.output
    assert "1 imported, 2 refused" in result.output
    assert "refused notes.json: not a ComfyUI workflow" in result.output
    assert "refused thumb.png: PNG without ComfyUI metadata" in result.output


def _bad_inputs(tmp_path: Path, ui: dict) -> dict[str, tuple[Path, str]]:
    cases: dict[str, tuple[Path, str]] = {}
    cases["not a workflow"] = (
        write_json(tmp_path / "list.json", [1, 2, 3]), "not a ComfyUI workflow"
    )  # fmt: skip
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(ui)[:500])
    cases["truncated"] = (truncated, "is not valid JSON (truncated?)")
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_with({"Software": "GIMP"}))
    cases["no metadata"] = (plain, "PNG without ComfyUI metadata")
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png_with({"prompt": "{}"})[:40])
    cases["truncated png"] = (cut_png, "truncated PNG")
    dangling = json.loads(json.dumps(ui))
    dangling["links"] = [link for link in dangling["links"] if link[0] != 1]
    cases["dangling"] = (
        write_json(tmp_path / "dangling.json", dangling),
        "node 3 (KSampler) input 'model': link 1 is not in the workflow's 'links'",
    )
    unknown = json.loads(json.dumps(ui))
    unknown["nodes"].append({"id": 99, "type": "FaceDetailer", "mode": 0, "widgets_values": []})
    cases["unknown node"] = (
        write_json(tmp_path / "unknown.json", unknown),
        "node 99 (FaceDetailer): node type 'FaceDetailer' is unknown",
    )
    cycle = json.loads(json.dumps(ui))
    cycle["links"].append([90, 8, 0, 3, 3, "LATENT"])
    next(n for n in cycle["nodes"] if n["id"] == 3)["inputs"][3]["link"] = 90
    cases["cycle"] = (write_json(tmp_path / "cycle.json", cycle), "its inputs form a cycle")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:  # sparse: 100 MB on paper, nothing on disk
        fh.truncate(100 * 1024 * 1024)
    assert huge.stat().st_size > MAX_FILE_BYTES
    cases["100 MB"] = (huge, "100 MiB is too large for a workflow")
    return cases


def test_bad_input_gets_one_clear_error_and_nothing_is_written(
    studio, catalogue_file, tmp_path, load_fixture
):
    for case, (path, expected) in _bad_inputs(tmp_path, default_ui(load_fixture)).items():
        result = import_(path, catalogue_file)
        assert result.exit_code == 1, (case, result.output)
        assert result.output.startswith(f"error: {path}: "), (case, result.output)
        assert expected in result.output, (case, result.output)
        assert "Traceback" not in result.output
        assert not studio.exists() or not any(studio.iterdir()), case


def test_usage_errors_exit_2(studio, catalogue_file, tmp_path, load_fixture):
    source = write_json(tmp_path / "castle.json", default_ui(load_fixture))
    assert import_(source, catalogue_file, "--kind", "opera").exit_code == 2
    no_catalogue = invoke("import", str(source))
    assert no_catalogue.exit_code == 1
    assert "needs the server's node catalogue" in no_catalogue.output


def test_webp_with_comfyui_exif_imports(studio, catalogue_file, tmp_path, load_fixture):
    from PIL import Image

    ui = default_ui(load_fixture)
    # As ComfyUI's SaveAnimatedWEBP writes it: EXIF Make = "workflow:{...}", Model = "prompt:..."
    exif = Image.Exif()
    exif[0x010F] = "workflow:" + json.dumps(ui)
    path = tmp_path / "clip_00001_.webp"
    Image.new("RGB", (8, 8), "white").save(path, "WEBP", exif=exif.tobytes())
    result = import_(path, catalogue_file)
    assert result.exit_code == 0, result.output
    assert "imported: clip_00001 v1" in result.output and "[ui (webp)]" in result.output


def test_legacy_group_nodes_are_refused_with_what_to_do(object_info, load_fixture):
    from workflows import UIImportError, ui_to_api

    ui = default_ui(load_fixture)
    ui["extra"] = {"groupNodes": {"Prompts": {"nodes": [], "links": [], "external": []}}}
    ui["nodes"].append({"id": 70, "type": "workflow>Prompts", "mode": 0})
    with pytest.raises(UIImportError, match=r"node 70 \(workflow>Prompts\): legacy group nodes"):
        ui_to_api(ui, object_info)


def test_check_against_a_server_named_by_its_block(
    prefect_harness, studio, catalogue_file, tmp_path, load_fixture
):
    import uuid

    from blocks.comfyui import ComfyUIServer
    from tests.comfyui_server import ComfyUITestServer

    ui = default_ui(load_fixture)
    source = write_json(tmp_path / "castle.json", ui)
    assert import_(source, catalogue_file).exit_code == 0
    name = f"check-{uuid.uuid4().hex[:6]}"
    token = "s3cret-token-for-the-proxy"
    with ComfyUITestServer(tmp_path / "comfy", auth=("Authorization", f"Bearer {token}")) as comfy:
        ComfyUIServer(base_url=comfy.url, auth_token=token).save(name)
        result = invoke("check", "castle", "--server", name)
    assert result.exit_code == 1, result.output
    assert f"castle v1: 1 problem(s) on {name}" in result.output
    assert (
        "node 4 (CheckpointLoaderSimple) input 'ckpt_name': model file missing: "
        "models/checkpoints/v1-5-pruned-emaonly-fp16.safetensors" in result.output
    )
    assert token not in result.output
    unknown = invoke("check", "castle", "--server", "no-such-block")
    assert unknown.exit_code == 1 and "neither an http(s) URL nor a ComfyUIServer block" in (
        unknown.output
    )
