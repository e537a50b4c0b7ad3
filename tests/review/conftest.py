"""Review fixtures: the flow tests' small production and blocks, a domain API on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from anime.api.app import create_app
from tests.flows.conftest import (  # noqa: F401  (fixtures shared with the flow tests)
    save_blocks,
    small_production,
    stand_in_models,
)
from tests.ops.conftest import free_port
from tests.reel.conftest import reel_episode  # noqa: F401  (the five-cut episode of the reel tests)

FAILING = {"aesthetic": 100.0, "motion_smoothness": 0.5}  # every keyframe fails its gate


def api() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t")


class LiveApi:
    """The domain API served by uvicorn on loopback; records every request path and status."""

    def __init__(self, app) -> None:
        self.seen: list[tuple[str, int]] = []
        seen = self.seen

        @app.middleware("http")
        async def record(request, call_next):
            response = await call_next(request)
            seen.append((request.url.path, response.status_code))
            return response

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_api(db, tmp_path, monkeypatch) -> Iterator:
    """A factory: live_api(app) serves ``app`` (default: the domain API) on loopback."""
    monkeypatch.setenv("ANIME_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    started: list[LiveApi] = []

    def serve(app=None) -> LiveApi:
        live = LiveApi(app or create_app())
        live.start()
        started.append(live)
        return live

    yield serve
    for live in started:
        live.stop()
