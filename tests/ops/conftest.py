"""Fixtures for operations tests: the example production, a webhook receiver on loopback,
the studio's deployments served from the test process against the Prefect test server."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from blocks.scoring import ScoringModels
from db.engine import session_scope
from db.production_file import load_production
from db.production_io import import_production
from tests.conftest import EXAMPLE

PROJECT = "moonlit-courier"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def production(db, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    return PROJECT


def set_project_notifications(routes: list) -> None:
    from sqlalchemy import select

    from db.models import Project

    with session_scope() as s:
        project = s.scalar(select(Project).where(Project.slug == PROJECT))
        project.settings = {**project.settings, "notifications": routes}


@dataclass
class WebhookReceiver:
    """A tiny HTTP server on loopback that records every JSON body posted to it."""

    status: int = 200
    received: list[dict] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def serve(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.received.append(body)
                receiver.arrived.set()
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = receiver.serve()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
async def webhook_block(prefect_harness, webhook) -> str:
    """A saved CustomWebhookNotificationBlock pointing at the receiver: `custom-webhook/<name>`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    name = f"studio-{uuid.uuid4().hex[:8]}"
    await CustomWebhookNotificationBlock(
        name="studio alerts",
        url=webhook.url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        timeout=5,
    ).save(name)
    return f"custom-webhook/{name}"


@pytest.fixture(scope="session")
async def offline_models(prefect_harness, tmp_path_factory) -> str:
    """Scoring models that are not on disk and may not be downloaded: every metric is
    'could not judge' at once, so a render is fast and its gate closes."""
    name = f"offline-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("no-models")
    await ScoringModels(
        face_root=str(root),
        clip_pretrained=str(root / "missing-clip.pt"),
        aesthetic_head=str(root / "missing-head.pth"),
        allow_downloads=False,
    ).save(name)
    return name


@pytest.fixture(scope="session")
async def served(prefect_harness) -> AsyncIterator[dict[str, str]]:
    """Every studio deployment served from this process (runs execute in subprocesses, as
    under `anime serve`), nightly schedule in Asia/Tokyo. Yields deployment name -> id."""
    from deployments.catalogue import ScheduleOverrides, deployment_specs
    from deployments.serve import studio_runner

    overrides = ScheduleOverrides(timezone="Asia/Tokyo")
    before = signal.getsignal(signal.SIGTERM)
    runner = await studio_runner(overrides, poll_seconds=1, name="anime-test-runner")
    task = asyncio.create_task(runner.start())
    ids = {}
    async with get_client() as client:
        for spec in deployment_specs(overrides):
            ids[spec.name] = str(
                (await client.read_deployment_by_name(f"{spec.name}/{spec.name}")).id
            )
    yield ids
    await runner.astop()
    await asyncio.wait_for(task, 30)
    signal.signal(signal.SIGTERM, before)  # the Runner installs its own while it runs
    async with get_client() as client:
        for deployment_id in ids.values():
            await client.delete_deployment(uuid.UUID(deployment_id))


class _RetryUnavailable(httpx.AsyncHTTPTransport):
    """Retry 503 as Prefect's own client does: the server answers it when its database is
    momentarily busy (this box runs other suites at once), and it means "try again"."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(5):
            response = await super().handle_async_request(request)
            if response.status_code != 503 or attempt == 4:
                return response
            await response.aclose()
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def prefect_api() -> httpx.AsyncClient:
    """Prefect's REST API, spoken to as any careful HTTP client would."""
    return httpx.AsyncClient(
        base_url=PREFECT_API_URL.value().rstrip("/"), timeout=30, transport=_RetryUnavailable()
    )


async def start_served_episode(api: httpx.AsyncClient, served: dict, parameters: dict) -> str:
    """A run of the served `render-episode` deployment, created as any HTTP client (or the
    UI's Run button) creates one; returns its id."""
    answer = await api.post(
        f"/deployments/{served['render-episode']}/create_flow_run",
        json={"parameters": parameters},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]
