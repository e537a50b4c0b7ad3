"""Outputs from an untrusted server never land outside the artifact folder, nor over the cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blocks.comfyui import ComfyUIOutputError, ComfyUIOutputTooLarge
from blocks.comfyui.downloads import safe_component
from blocks.comfyui.models import OutputFile
from tests.comfyui.helpers import basic_graph, client_for
from tests.comfyui_server import ComfyUITestServer

HOSTILE = [
    ("../../..", "../../escape.png"),
    ("/etc", "passwd"),
    ("sub\\..\\..\\..", "..\\..\\evil.png"),
    ("", "nul\x00byte.png"),
    ("", "x" * 300 + ".png"),
    ("", ".."),
    ("", "/abs/path.png"),
    ("C:\\Windows", "CON.png"),
    ("a/./b/../../../c", "\n.png"),
]


def _everything_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


async def test_hostile_names_never_escape_the_artifact_folder(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    comfy.use_hostile_names(HOSTILE)
    sandbox = tmp_path / "sandbox"
    dest = sandbox / "artifacts" / "job-1"
    dest.mkdir(parents=True)
    before = _everything_under(sandbox)
    client = client_for(comfy)

    result = await client.render(basic_graph(batch=len(HOSTILE)), "hostile")
    assert [(o.subfolder, o.filename) for o in result.outputs] == HOSTILE
    files = await client.download_all(result, dest)

    root = dest.resolve()
    paths = [f.path for f in files]
    assert len(set(paths)) == len(HOSTILE)  # no two hostile names collapse onto one file
    for path in paths:
        assert path.resolve().is_relative_to(root)
        assert path.is_file() and not path.is_symlink()
        assert all(len(part.encode()) <= 128 for part in path.relative_to(root).parts)
        assert "\x00" not in str(path) and "\\" not in str(path) and "\n" not in str(path)
    created = _everything_under(sandbox) - before
    assert all(p.resolve().is_relative_to(root) for p in created)
    assert not list(Path("/").glob("escape*.png")) and not (tmp_path / "evil.png").exists()
    assert all(f.size > 0 and f.path.stat().st_size == f.size for f in files)


async def test_a_symlink_in_the_artifact_folder_is_not_followed(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    comfy.use_hostile_names([("sub", "planted.png")])
    client = client_for(comfy)
    result = await client.render(basic_graph(), "through-link")

    with pytest.raises(ComfyUIOutputError, match="symlink"):
        await client.download_all(result, dest)
    assert list(outside.iterdir()) == []


async def test_a_symlink_planted_at_the_file_name_is_replaced_not_followed(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    client = client_for(comfy)
    result = await client.render(basic_graph(), "planted-file")
    (dest / result.outputs[0].filename).symlink_to(victim)

    [file] = await client.download_all(result, dest)
    assert victim.read_text() == "precious"
    assert not file.path.is_symlink() and file.path.stat().st_size == file.size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_outputs_over_the_cap_are_refused_and_leave_nothing(
    comfy: ComfyUITestServer, tmp_path: Path, chunked: bool
) -> None:
    comfy.faults.view_without_length = chunked
    client = client_for(comfy, max_output_bytes=300)
    result = await client.render(basic_graph(width=256, height=256, seed=1), "big")
    dest = tmp_path / "dest"

    with pytest.raises(ComfyUIOutputTooLarge, match="over the 300-byte cap"):
        await client.download_all(result, dest)
    assert [p for p in dest.rglob("*") if p.is_file()] == []

    exact = await client.download(result.outputs[0], dest, max_bytes=10**6)
    assert exact.size > 300
    at_cap = await client.download(result.outputs[0], tmp_path / "again", max_bytes=exact.size)
    assert at_cap.sha256 == exact.sha256  # a file exactly at the cap is fine


async def test_missing_output_file_is_a_clear_error(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    ghost = OutputFile(node_id="9", kind="images", filename="ghost_00001_.png")
    with pytest.raises(
        ComfyUIOutputError, match="'ghost_00001_.png' of node 9 is not on the server"
    ):
        await client_for(comfy).download(ghost, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("probe_00001_.png", "probe_00001_.png"),
        ("..", None),
        (" . ", None),
        ("a/b", "a_b-"),
        ("con.png", "_con-"),
        ("\x00.png", "_-"),
    ],
)
def test_safe_component(raw: str, expected: str | None) -> None:
    cleaned = safe_component(raw)
    if expected is None:
        assert cleaned is None
    else:
        assert cleaned is not None and cleaned.startswith(expected)
        assert os.sep not in cleaned and "\x00" not in cleaned
