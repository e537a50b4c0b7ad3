"""The auth token reaches the server and nothing else: no error message, no log line."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.comfyui import (
    ComfyUIAuthError,
    ComfyUIError,
    ComfyUIUnavailable,
    ComfyUIValidationError,
)
from tests.comfyui.helpers import basic_graph, block_for, client_for
from tests.comfyui_server import ComfyUITestServer

TOKEN = "s3cr3t-t0ken-do-not-leak"
WRONG = "wr0ng-t0ken-also-secret"


def _all_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


async def test_token_is_sent_in_the_configured_header_and_never_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ComfyUITestServer(tmp_path / "c", auth=("X-Api-Key", f"Token {TOKEN}")) as comfy:
        good = block_for(
            comfy, auth_token=SecretStr(TOKEN), auth_header="X-Api-Key", auth_scheme="Token"
        )
        result = await good.get_client().render(basic_graph(), "with-auth")
        files = await good.get_client().download_all(result, tmp_path / "out")
        assert result.status == "success" and files[0].size > 0

        bad = client_for(comfy, auth_token=SecretStr(WRONG), auth_header="X-Api-Key")
        with pytest.raises(ComfyUIAuthError, match="refused with HTTP 401") as refused:
            await bad.submit(basic_graph(), "wrong-token")
        invalid = basic_graph()
        invalid["1"]["inputs"]["width"] = -1
        with pytest.raises(ComfyUIValidationError) as rejected:
            await good.get_client().submit(invalid, "invalid")
        url = comfy.url
    with pytest.raises(ComfyUIUnavailable) as unreachable:
        await client_for(comfy, base_url=url, auth_token=SecretStr(TOKEN)).submit(
            basic_graph(), "x"
        )

    errors: list[ComfyUIError] = [refused.value, rejected.value, unreachable.value]
    for error in errors:
        assert TOKEN not in _all_text(error) and WRONG not in _all_text(error)
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    assert ours, "nothing was logged: the check below would prove nothing"
    for record in ours:
        assert TOKEN not in record.getMessage() and WRONG not in record.getMessage(), record.name
    # websockets logs handshake headers at DEBUG: they are there, redacted.
    handshake = [r.getMessage() for r in ours if r.name == "blocks.comfyui.websocket"]
    assert any("x-api-key: ***" in line.lower() for line in handshake)
    assert TOKEN not in repr(good) and TOKEN not in str(good.model_dump())
