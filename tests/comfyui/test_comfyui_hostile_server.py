"""A misbehaving ComfyUI: a /view that trickles, an /object_info that never ends, a server
that echoes our credentials back. Each is refused clearly, in bounded time and memory, and
no credential survives into an error or a log line."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.comfyui import (
    ComfyUIAttemptTimeout,
    ComfyUIDownloadStalled,
    ComfyUIExecutionError,
    ComfyUIRenderTimeout,
    ComfyUIResponseTooLarge,
    ComfyUIServer,
    ComfyUITransientError,
    ComfyUIValidationError,
    render_on,
)
from tests.comfyui.helpers import basic_graph, block_for, client_for
from tests.comfyui_server import ComfyUITestServer, ExecutionFault

TOKEN = "tr1ckle-t0ken-never-echo"
BIG = {"width": 256, "height": 256, "seed": 1}  # a noisy PNG of about 190 KB


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


async def test_a_trickling_view_fails_on_the_minimum_rate(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    client = client_for(comfy, download_grace_s=0.3, min_download_bytes_per_s=64 * 1024)
    result = await client.render(basic_graph(**BIG), "trickle")
    comfy.faults.trickle_view = (1024, 0.1)  # 10 KiB/s: the studio asks for 64

    with pytest.raises(ComfyUIDownloadStalled) as stalled:
        await client.download_all(result, tmp_path / "out")
    message = str(stalled.value)
    assert "is stalling" in message and "min_download_bytes_per_s" in message
    assert result.outputs[0].filename in message and comfy.url in message
    assert not isinstance(stalled.value, ComfyUITransientError)  # a verdict: never retried
    assert _files(tmp_path / "out") == []


async def test_a_download_past_its_deadline_fails(comfy: ComfyUITestServer, tmp_path: Path) -> None:
    client = client_for(comfy, download_timeout_s=0.5, min_download_bytes_per_s=0)
    result = await client.render(basic_graph(**BIG), "deadline")
    comfy.faults.trickle_view = (1024, 0.1)

    with pytest.raises(ComfyUIDownloadStalled, match=r"within its 0.5 s deadline"):
        await client.download_all(result, tmp_path / "out")
    assert _files(tmp_path / "out") == []


async def test_a_stalled_download_ends_the_render_instead_of_waiting_it_out(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    # render_on waits outages out (ComfyUIUnavailable); a stall must not enter that loop.
    block = block_for(comfy, download_grace_s=0.2, min_download_bytes_per_s=64 * 1024)
    comfy.faults.trickle_view = (1024, 0.1)

    with pytest.raises(ComfyUIDownloadStalled, match="is stalling"):
        await render_on(block, basic_graph(**BIG), "stalled-render", tmp_path / "out")
    assert comfy.stats.prompts_executed == 1  # rendered once, not resubmitted


async def test_an_attempt_past_its_deadline_fails_whatever_each_stage_allows(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    # A slow download inside its own bounds (no minimum rate, a long per-file deadline): only
    # the attempt's overall deadline ends it.
    block = block_for(comfy, attempt_timeout_s=1.0, min_download_bytes_per_s=0)
    comfy.faults.trickle_view = (1024, 0.1)  # about 19 s for this output

    with pytest.raises(ComfyUIAttemptTimeout) as late:
        await render_on(block, basic_graph(**BIG), "late", tmp_path / "out", label="ep01-late")
    message = str(late.value)
    assert message.startswith("render ep01-late: the attempt went past its 1 s deadline")
    assert "(the block's attempt_timeout_s) while downloading its 1 output file(s)" in message
    assert "its prompt had finished; no partial file was kept" in message
    assert comfy.url in message and "prompt late" in message
    assert not isinstance(late.value, ComfyUITransientError)  # never retried
    assert _files(tmp_path / "out") == [] and comfy.stats.prompts_executed == 1


async def test_an_attempt_past_its_deadline_while_rendering_withdraws_the_prompt(
    slow_comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    block = block_for(slow_comfy, attempt_timeout_s=0.5)  # each render takes 2 s

    with pytest.raises(ComfyUIAttemptTimeout, match="in ComfyUI's queue or rendering") as late:
        await render_on(block, basic_graph(), "withdrawn", tmp_path / "out")
    assert "its prompt was withdrawn from the server" in str(late.value)
    assert slow_comfy.stats.interrupts == 1  # the server stopped rendering it


async def test_a_retried_attempt_keeps_its_first_deadline(tmp_path: Path) -> None:
    # The first try ends at its render_timeout_s (transient: Prefect retries the task); the
    # retry re-attaches with what is left of the attempt's 2 s, not 2 s more, so the 3 s
    # render is withdrawn instead of waited for.
    with ComfyUITestServer(tmp_path / "c", render_time_s=3.0, progress_steps=10) as comfy:
        first = block_for(comfy, render_timeout_s=1.5, attempt_timeout_s=2.0)
        with pytest.raises(ComfyUIRenderTimeout):
            await render_on(first, basic_graph(), "retried", tmp_path / "out", attempt_key="t1")
        retry = block_for(comfy, render_timeout_s=20.0, attempt_timeout_s=2.0)
        with pytest.raises(ComfyUIAttemptTimeout, match="past its 2 s deadline"):
            await render_on(retry, basic_graph(), "retried", tmp_path / "out", attempt_key="t1")
        assert comfy.stats.interrupts == 1 and comfy.stats.prompts_executed == 1


def test_the_attempt_deadline_defaults_to_render_plus_download_time() -> None:
    block = ComfyUIServer(base_url="http://gpu-1:8188", render_timeout_s=600)
    assert block.get_client().settings.attempt_timeout_s == 600 + 900
    chosen = ComfyUIServer(base_url="http://gpu-1:8188", attempt_timeout_s=120)
    assert chosen.get_client().settings.attempt_timeout_s == 120


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_object_info_over_the_cap_is_refused(comfy: ComfyUITestServer, chunked: bool) -> None:
    comfy.faults.object_info_without_length = chunked
    comfy.faults.object_info_padding_bytes = 3 * 1024**2
    client = client_for(comfy, max_object_info_bytes=1024**2)

    with pytest.raises(ComfyUIResponseTooLarge, match="over the 1048576-byte cap") as refused:
        await client.object_info()
    assert "GET /object_info" in str(refused.value) and comfy.url in str(refused.value)

    comfy.faults.object_info_padding_bytes = 0
    assert "SaveImage" in await client.object_info()  # a normal answer under the cap is read


async def test_an_echoed_token_is_redacted_from_errors_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ComfyUITestServer(tmp_path / "c", auth=("Authorization", f"Bearer {TOKEN}")) as comfy:
        comfy.faults.echo_header = "Authorization"
        client = client_for(comfy, auth_token=SecretStr(TOKEN))
        invalid = basic_graph()
        invalid["1"]["inputs"]["width"] = -1
        with pytest.raises(ComfyUIValidationError) as rejected:
            await client.submit(invalid, "echo-400")
        comfy.faults.execution_error = ExecutionFault(class_type="ImageInvert", message="denied")
        with pytest.raises(ComfyUIExecutionError) as failed:
            await client.render(basic_graph(), "echo-execution")
        history = await client.lookup("echo-execution")

    # The server did echo it (the check would prove nothing otherwise), redacted as ***.
    assert "for request with Authorization: ***" in str(rejected.value)
    assert "denied (***)" in str(failed.value)
    for error in (rejected.value, failed.value):
        text = "".join(traceback.format_exception(error)) + repr(error)
        assert TOKEN not in text
    assert TOKEN not in repr(history)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
