"""The converter against ComfyUI's own workflow templates, offered to a real ComfyUI's /prompt.

The pinned corpus (comfyui-workflow-templates 0.1.95, installed in the peer's environment)
and the newest one the registry serves (`make comfyui-peer` downloads its wheel into .cache/;
tests never download). Placeholder model and input files make names valid; every accepted
prompt is dropped from the queue at once, so only the server's validation runs.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.real_comfyui.corpus import (
    CorpusResult,
    combo_folders,
    convert_all,
    editor_workflows,
    place_files,
    submit_all,
)
from tests.real_comfyui.peer import REPO, RealComfyUI, peer_venv
from workflows import Catalogue, extract_params

NEWEST_WHEELS = REPO / ".cache" / "workflow-templates"


def pinned_corpus() -> Path | None:
    found = sorted(
        peer_venv().glob("lib/python3*/site-packages/comfyui_workflow_templates/templates")
    )
    return found[0] if found else None


def run_corpus(server: RealComfyUI, folder: Path, title: str) -> CorpusResult:
    if server.base is None:
        pytest.skip("placeholder model files need the peer ComfyUI, not COMFYUI_URL")
    folders = combo_folders(server.url, server.base)
    catalogue = Catalogue(httpx.get(f"{server.url}/object_info", timeout=120).json())
    result = convert_all(editor_workflows(folder), catalogue)
    for graph in result.converted.values():
        place_files(graph, catalogue, folders)
    submit_all(server.url, result.converted.items(), result)
    print(result.report(title))
    return result


def test_pinned_corpus_converts_and_the_server_accepts_it(real_comfyui: RealComfyUI) -> None:
    folder = pinned_corpus()
    if folder is None:
        pytest.skip(f"comfyui_workflow_templates is not installed in {peer_venv()}")
    result = run_corpus(real_comfyui, folder, "comfyui-workflow-templates 0.1.95")
    assert result.total >= 150  # the corpus was found, not an empty folder
    assert len(result.converted) >= 0.99 * result.known, result.report("pinned")
    assert not result.rejected and not result.needs_newer, result.report("pinned")
    for types in result.missing_nodes.values():
        assert types  # every refusal for missing nodes names them


def test_newest_corpus_converts_and_the_server_accepts_what_it_can_run(
    real_comfyui: RealComfyUI, tmp_path: Path
) -> None:
    wheels = sorted(NEWEST_WHEELS.glob("comfyui_workflow_templates_json-*.whl"))
    if not wheels:
        pytest.skip(f"no newest template wheel in {NEWEST_WHEELS} (`make comfyui-peer` fetches it)")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extractall(tmp_path)
    folder = next(tmp_path.glob("*/templates"))
    result = run_corpus(real_comfyui, folder, wheels[-1].name)
    assert result.total >= 150
    assert len(result.converted) >= 0.99 * result.known, result.report("newest")
    assert not result.rejected, result.report("newest")


SAMPLER_TYPES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")


def test_extract_params_reads_every_converted_corpus_graph(real_comfyui: RealComfyUI) -> None:
    folder = pinned_corpus()
    if folder is None:
        pytest.skip(f"comfyui_workflow_templates is not installed in {peer_venv()}")
    catalogue = Catalogue(httpx.get(f"{real_comfyui.url}/object_info", timeout=120).json())
    result = convert_all(editor_workflows(folder), catalogue)
    with_sampler = 0
    for name, graph in result.converted.items():
        params = extract_params(graph)  # never raises, whatever nodes the graph holds
        if any(node["class_type"] in SAMPLER_TYPES for node in graph.values()):
            with_sampler += 1
            assert params.steps is not None and params.sampler, name
            assert params.checkpoint, name
            disabled = any(n["class_type"] == "DisableNoise" for n in graph.values())
            assert params.seed is not None or disabled, name
    assert with_sampler >= 90
    default = extract_params(result.converted["default.json"])
    assert (default.seed, default.steps, default.cfg, default.sampler) == (
        156680208700286, 20, 8.0, "euler",
    )  # fmt: skip


def test_check_names_missing_nodes_models_and_refused_values(
    real_comfyui: RealComfyUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from anime.cli import app
    from workflows.importing import import_workflow

    folder = pinned_corpus()
    if folder is None:
        pytest.skip(f"comfyui_workflow_templates is not installed in {peer_venv()}")
    monkeypatch.setenv("ANIME_TEMPLATES_DIR", str(tmp_path / "templates"))
    catalogue = Catalogue(httpx.get(f"{real_comfyui.url}/object_info", timeout=120).json())
    graph = convert_all({"d": editor_workflows(folder)["default.json"]}, catalogue).converted["d"]
    graph["4"]["inputs"]["ckpt_name"] = "studio/never-installed.safetensors"
    graph["3"]["inputs"]["steps"] = 0  # KSampler's minimum is 1
    graph["50"] = {
        "class_type": "VHS_VideoCombine",
        "inputs": {"images": ["8", 0], "frame_rate": 8},
    }
    source = tmp_path / "studio_castle.json"
    source.write_text(json.dumps(graph))
    import_workflow(source, None, kind="image")
    result = CliRunner().invoke(
        app, ["workflow", "check", "studio_castle", "--server", real_comfyui.url]
    )
    assert result.exit_code == 1, result.output
    assert (
        "node 50: node type 'VHS_VideoCombine' is missing (install ComfyUI-VideoHelperSuite)"
        in (result.output)
    )
    assert (
        "node 4 (CheckpointLoaderSimple) input 'ckpt_name': model file missing: "
        "models/checkpoints/studio/never-installed.safetensors" in result.output
    )
    assert "node 3 (KSampler), input 'steps'" in result.output
    ok = CliRunner().invoke(app, ["workflow", "check", "preview", "--server", real_comfyui.url])
    assert ok.exit_code == 0, ok.output
    assert "has everything it needs" in ok.output
