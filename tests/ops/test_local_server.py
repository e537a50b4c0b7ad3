"""`anime render --deployment` without PREFECT_API_URL: this machine's `anime server`, or a
refusal saying what to set; never a throw-away Prefect server that knows no deployment."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from anime.cli import app


def _local_server_port_open() -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", 4200)) == 0


def test_without_prefect_api_url_and_no_local_server_it_says_what_to_set(monkeypatch):
    if _local_server_port_open():
        pytest.skip("something answers on 127.0.0.1:4200 on this machine")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = CliRunner().invoke(
            app, ["render", "moonlit-courier", "1", "--deployment", "render-episode"]
        )
    assert result.exit_code == 1, result.output
    assert "PREFECT_API_URL is not set and no `anime server` answers at" in result.stderr
    assert "http://127.0.0.1:4200/api" in result.stderr
    assert "Traceback" not in result.output
