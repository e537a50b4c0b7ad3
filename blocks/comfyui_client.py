"""The async ComfyUI client behind the `ComfyUIServer` block (httpx + websockets).

Following a prompt never trusts the socket alone: the socket gives live progress and the
end-of-prompt signal (`executing` with `node: null`), while `/queue` then `/history` are
polled on a timer and after every (re)connect, under a hard render deadline. A stalled or
dropped socket therefore slows nothing down, and a prompt is called lost only when it is in
neither the queue nor the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from blocks.comfyui_errors import (
    ComfyUIAuthError,
    ComfyUICancelled,
    ComfyUIError,
    ComfyUIOutputError,
    ComfyUIOutputTooLarge,
    ComfyUIPromptLost,
    ComfyUIProtocolError,
    ComfyUIRenderTimeout,
    ComfyUIUnavailable,
    ComfyUIValidationError,
)
from blocks.comfyui_models import (
    CancelOutcome,
    DownloadedFile,
    ExecutionFailure,
    HealthReport,
    NodeExecuted,
    NodeExecuting,
    NodeProgress,
    NodesCached,
    OutputFile,
    ProgressEvent,
    PromptDone,
    PromptFailed,
    PromptInterrupted,
    PromptQueued,
    PromptStarted,
    PromptState,
    PromptSucceeded,
    RenderResult,
    ServerEnvironment,
    Submission,
    client_id_for,
    execution_failure,
)
from blocks.comfyui_outputs import open_temporary, prepare_target, safe_relative_path

logger = logging.getLogger("blocks.comfyui")
_ws_logger = logging.getLogger("blocks.comfyui.websocket")
WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # preview frames can be large
WS_MAX_QUEUE = 4096  # messages buffered before reading pauses
DOWNLOAD_CHUNK = 256 * 1024


class _RedactSecrets(logging.Filter):
    """websockets logs handshake headers at DEBUG; never let a credential through."""

    secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in sorted(self.secrets, key=len, reverse=True):
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


_redactor = _RedactSecrets()
_ws_logger.addFilter(_redactor)

# Prompts this process cancelled: a prompt deleted from the queue vanishes from the server,
# so without this note a follower would report it lost (and a retry would render it).
_cancelled: OrderedDict[tuple[str, str], None] = OrderedDict()


def _note_cancelled(server: str, prompt_id: str) -> None:
    _cancelled[(server, prompt_id)] = None
    while len(_cancelled) > 10_000:
        _cancelled.popitem(last=False)


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    auth_header: str = "Authorization"
    auth_value: SecretStr | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    render_timeout_s: float = 1800.0
    poll_interval_s: float = 2.0
    unreachable_grace_s: float = 60.0
    max_output_bytes: int = 2 * 1024**3


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process. httpx builds one per client otherwise, loading the CA
    bundle each time (~20 ms of CPU), and a render opens several clients: measured in
    docs/benchmarks.md as a quarter of an episode's per-cut cost."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class ComfyUIClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.server = settings.base_url.rstrip("/")
        secret = settings.auth_value.get_secret_value() if settings.auth_value else ""
        self._headers = {settings.auth_header: secret} if secret else {}
        # The whole header value and the token after its scheme word: either may be echoed.
        self._secrets = {s for s in (secret, secret.split(" ", 1)[-1]) if s}
        _redactor.secrets.update(self._secrets)

    # -- plumbing --------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx.AsyncClient]:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
        async with httpx.AsyncClient(
            base_url=self.server,
            headers=self._headers,
            timeout=timeout,
            follow_redirects=False,
            verify=_tls_context(),
        ) as http:
            yield http

    async def _request(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        accept: tuple[int, ...] = (200,),
        prompt_id: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ComfyUIUnavailable(
                f"{what} timed out", server=self.server, prompt_id=prompt_id
            ) from None
        except httpx.TransportError as exc:
            reason = self._redact(str(exc)) or type(exc).__name__
            raise ComfyUIUnavailable(
                f"cannot reach ComfyUI for {what}: {reason}",
                server=self.server,
                prompt_id=prompt_id,
            ) from None
        return self._check(response, what, accept, prompt_id)

    def _check(
        self, response: httpx.Response, what: str, accept: tuple[int, ...], prompt_id: str | None
    ) -> httpx.Response:
        code = response.status_code
        if code in accept:
            return response
        if code in (401, 403):
            raise ComfyUIAuthError(
                f"{what} was refused with HTTP {code}: check the block's auth header and token",
                server=self.server,
                prompt_id=prompt_id,
            )
        try:
            body = self._redact(response.text[:200].strip())
        except httpx.ResponseNotRead:
            body = ""
        if code >= 500 or code in (408, 429):
            raise ComfyUIUnavailable(
                f"{what} answered HTTP {code}: {body}".rstrip(": "),
                server=self.server,
                prompt_id=prompt_id,
            )
        raise ComfyUIProtocolError(
            f"{what} answered HTTP {code}, which ComfyUI does not answer: {body}".rstrip(": "),
            server=self.server,
            prompt_id=prompt_id,
        )

    def _json(self, response: httpx.Response, what: str, prompt_id: str | None = None) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ComfyUIProtocolError(
                f"{what} did not answer JSON (is this a ComfyUI server?)",
                server=self.server,
                prompt_id=prompt_id,
            ) from None

    def ws_url(self, client_id: str) -> str:
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/ws"
        return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))

    # -- small reads -----------------------------------------------------------------------
    async def queue(self) -> dict[str, Any]:
        async with self._http() as http:
            return self._json(await self._request(http, "GET", "/queue"), "GET /queue")

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        path = (
            "/object_info" if class_type is None else f"/object_info/{quote(class_type, safe='')}"
        )
        async with self._http() as http:
            return self._json(await self._request(http, "GET", path), f"GET {path}")

    async def system_stats(self) -> ServerEnvironment:
        async with self._http() as http:
            stats = self._json(await self._request(http, "GET", "/system_stats"), "stats")
        return ServerEnvironment.from_stats(stats if isinstance(stats, dict) else {})

    async def health(self) -> HealthReport:
        """Reachable, authorised, and how busy: never raises."""
        started = time.monotonic()
        try:
            async with self._http() as http:
                stats = self._json(await self._request(http, "GET", "/system_stats"), "stats")
                status = self._json(await self._request(http, "GET", "/prompt"), "GET /prompt")
        except ComfyUIError as exc:
            return HealthReport(server=self.server, ok=False, error=exc.detail)
        exec_info = status.get("exec_info") if isinstance(status, dict) else None
        remaining = (exec_info or {}).get("queue_remaining")
        return HealthReport(
            server=self.server,
            ok=True,
            latency_s=time.monotonic() - started,
            queue_remaining=remaining if isinstance(remaining, int) else None,
            comfyui_version=((stats or {}).get("system") or {}).get("comfyui_version"),
        )

    async def lookup(self, prompt_id: str) -> PromptState:
        async with self._http() as http:
            return await self._lookup(http, prompt_id)

    async def _lookup(self, http: httpx.AsyncClient, prompt_id: str) -> PromptState:
        # Queue first, history second: ComfyUI writes the history entry before it drops a
        # prompt from the running list, so "in neither" seen in this order means lost.
        queue = self._json(await self._request(http, "GET", "/queue", prompt_id=prompt_id), "queue")
        if not isinstance(queue, dict):
            raise ComfyUIProtocolError(
                "GET /queue did not answer a queue", server=self.server, prompt_id=prompt_id
            )
        for item in queue.get("queue_running") or []:
            if len(item) > 1 and item[1] == prompt_id:
                return PromptState("running", number=item[0])
        pending = sorted(
            (i for i in queue.get("queue_pending") or [] if len(i) > 1), key=lambda i: i[0]
        )
        for position, item in enumerate(pending):
            if item[1] == prompt_id:
                return PromptState("queued", position=position, number=item[0])
        path = f"/history/{quote(prompt_id, safe='')}"
        history = self._json(await self._request(http, "GET", path, prompt_id=prompt_id), path)
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if isinstance(entry, dict):
            prompt = entry.get("prompt") or [None]
            return PromptState("done", number=prompt[0], entry=entry)
        return PromptState("absent")

    async def result(self, prompt_id: str) -> RenderResult:
        """The finished prompt's outputs from `/history` (raises while it is not finished)."""
        async with self._http() as http:
            state = await self._lookup(http, prompt_id)
        if state.phase == "done" and state.entry is not None:
            return RenderResult.from_history(prompt_id, state.entry, self.server)
        if state.phase == "absent":
            raise self._absent(prompt_id)
        raise ComfyUIError(
            f"the prompt is still {state.phase}", server=self.server, prompt_id=prompt_id
        )

    def _absent(self, prompt_id: str) -> ComfyUIError:
        if (self.server, prompt_id) in _cancelled:
            return ComfyUICancelled(
                "the prompt was taken off the queue", server=self.server, prompt_id=prompt_id
            )
        return ComfyUIPromptLost(
            "the prompt is in neither the queue nor the history: the server restarted or the "
            "prompt was deleted",
            server=self.server,
            prompt_id=prompt_id,
        )

    # -- submit ----------------------------------------------------------------------------
    async def submit(
        self, graph: dict[str, Any], prompt_id: str, *, extra_data: dict[str, Any] | None = None
    ) -> Submission:
        """Queue `graph` under `prompt_id`, unless the server already has that prompt: then
        re-attach to it (a retry after a crash never renders twice)."""
        async with self._http() as http:
            return await self._submit(http, graph, prompt_id, extra_data)

    async def _submit(
        self,
        http: httpx.AsyncClient,
        graph: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any] | None,
    ) -> Submission:
        check_api_graph(graph)
        client_id = client_id_for(prompt_id)
        state = await self._lookup(http, prompt_id)
        if state.phase != "absent":
            logger.info(
                "prompt %s is already %s on %s: re-attaching instead of submitting again",
                prompt_id,
                state.phase,
                self.server,
            )
            return Submission(
                prompt_id=prompt_id,
                server=self.server,
                client_id=client_id,
                number=state.number,
                reattached=True,
                state=state.phase,
            )
        body = {
            "prompt": graph,
            "client_id": client_id,
            "prompt_id": prompt_id,
            "extra_data": dict(extra_data or {}),
        }
        response = await self._request(
            http, "POST", "/prompt", accept=(200, 400), json=body, prompt_id=prompt_id
        )
        answer = self._json(response, "POST /prompt", prompt_id)
        if response.status_code == 400:
            raise ComfyUIValidationError.from_body(answer, server=self.server, prompt_id=prompt_id)
        if not isinstance(answer, dict):
            raise ComfyUIProtocolError(
                "POST /prompt did not answer a prompt id", server=self.server, prompt_id=prompt_id
            )
        if answer.get("node_errors"):
            # ComfyUI queued the outputs that validated and dropped the rest: a partial render
            # is not what was asked for, so take it back and report every node error.
            await self._cancel(http, prompt_id)
            partial = {
                "error": {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Some outputs failed validation",
                },
                "node_errors": answer["node_errors"],
            }
            raise ComfyUIValidationError.from_body(partial, server=self.server, prompt_id=prompt_id)
        _cancelled.pop((self.server, prompt_id), None)  # queued anew: no longer cancelled
        logger.info(
            "queued prompt %s on %s (number %s)", prompt_id, self.server, answer.get("number")
        )
        return Submission(
            prompt_id=str(answer.get("prompt_id") or prompt_id),
            server=self.server,
            client_id=client_id,
            number=answer.get("number"),
        )

    # -- follow ----------------------------------------------------------------------------
    async def follow(
        self, prompt_id: str, *, raise_on_failure: bool = True
    ) -> AsyncIterator[ProgressEvent]:
        """Progress events of a submitted prompt, ending with `PromptDone`. With
        `raise_on_failure`, an error or interrupt is raised after `PromptDone`."""
        async with self._http() as http, _Socket(self, client_id_for(prompt_id)) as socket:
            follower = _Follower(self, http, socket, prompt_id)
            async for event in follower.events(raise_on_failure):
                yield event

    async def render(
        self,
        graph: dict[str, Any],
        prompt_id: str,
        *,
        on_event: Callable[[ProgressEvent], Any] | None = None,
        extra_data: dict[str, Any] | None = None,
        raise_on_failure: bool = True,
    ) -> RenderResult:
        """Submit (or re-attach) and follow to the end, with the socket opened *before* the
        prompt is queued so that no early progress is missed."""
        async with self._http() as http, _Socket(self, client_id_for(prompt_id)) as socket:
            await socket.connect(self.settings.connect_timeout_s)
            await self._submit(http, graph, prompt_id, extra_data)
            follower = _Follower(self, http, socket, prompt_id)
            result: RenderResult | None = None
            async for event in follower.events(raise_on_failure):
                if on_event is not None:
                    outcome = on_event(event)
                    if asyncio.iscoroutine(outcome):
                        await outcome
                if isinstance(event, PromptDone):
                    result = event.result
            assert result is not None
            return result

    # -- cancel ----------------------------------------------------------------------------
    async def cancel(self, prompt_id: str) -> CancelOutcome:
        """Interrupt the prompt if it runs, take it off the queue if it waits."""
        async with self._http() as http:
            return await self._cancel(http, prompt_id)

    async def _cancel(self, http: httpx.AsyncClient, prompt_id: str) -> CancelOutcome:
        for _ in range(5):
            state = await self._lookup(http, prompt_id)
            if state.phase == "running":
                _note_cancelled(self.server, prompt_id)
                await self._request(
                    http, "POST", "/interrupt", json={"prompt_id": prompt_id}, prompt_id=prompt_id
                )
                logger.info("interrupted prompt %s on %s", prompt_id, self.server)
                return "interrupted"
            if state.phase == "queued":
                _note_cancelled(self.server, prompt_id)
                await self._request(
                    http, "POST", "/queue", json={"delete": [prompt_id]}, prompt_id=prompt_id
                )
                after = await self._lookup(http, prompt_id)
                if after.phase in ("absent", "done"):
                    logger.info("took prompt %s off the queue of %s", prompt_id, self.server)
                    return "dequeued"
                continue  # it started between our two looks: interrupt it next round
            return "already_finished" if state.phase == "done" else "unknown"
        return "unknown"

    # -- download --------------------------------------------------------------------------
    async def download(
        self, output: OutputFile, dest_dir: Path, *, max_bytes: int | None = None
    ) -> DownloadedFile:
        """Stream one output into `dest_dir` (never outside it), with a size cap."""
        async with self._http() as http:
            return await self._download(http, output, Path(dest_dir), max_bytes)

    async def download_all(
        self, result: RenderResult, dest_dir: Path, *, max_bytes: int | None = None
    ) -> list[DownloadedFile]:
        async with self._http() as http:
            return [
                await self._download(http, output, Path(dest_dir), max_bytes)
                for output in result.outputs
            ]

    async def _download(
        self, http: httpx.AsyncClient, output: OutputFile, dest_dir: Path, max_bytes: int | None
    ) -> DownloadedFile:
        cap = max_bytes if max_bytes is not None else self.settings.max_output_bytes
        target = prepare_target(dest_dir, safe_relative_path(output))
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        shown = f"{output.subfolder}/{output.filename}".lstrip("/")
        what = f"GET /view ({shown!r})"
        try:
            async with http.stream("GET", "/view", params=params) as response:
                if response.status_code == 404:
                    raise ComfyUIOutputError(
                        f"output {shown!r} of node {output.node_id} is not on the server",
                        server=self.server,
                    )
                if response.status_code != 200:
                    await response.aread()
                self._check(response, what, (200,), None)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap:
                    raise self._too_large(output, f"{int(declared)} bytes declared", cap)
                return await self._stream_to(response, output, target, cap)
        except httpx.TimeoutException:
            raise ComfyUIUnavailable(f"{what} timed out", server=self.server) from None
        except httpx.TransportError as exc:
            raise ComfyUIUnavailable(
                f"{what} failed: {self._redact(str(exc)) or type(exc).__name__}", server=self.server
            ) from None

    async def _stream_to(
        self, response: httpx.Response, output: OutputFile, target: Path, cap: int
    ) -> DownloadedFile:
        fd, temporary = open_temporary(target)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as sink:
                async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if size > cap:
                        raise self._too_large(output, f"more than {cap} bytes streamed", cap)
                    digest.update(chunk)
                    sink.write(chunk)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        return DownloadedFile(
            output=output,
            path=target,
            size=size,
            sha256=digest.hexdigest(),
            content_type=response.headers.get("content-type"),
        )

    def _too_large(self, output: OutputFile, seen: str, cap: int) -> ComfyUIOutputTooLarge:
        return ComfyUIOutputTooLarge(
            f"output {output.filename!r} of node {output.node_id} is over the {cap}-byte cap "
            f"({seen}); nothing was kept",
            server=self.server,
        )


def check_api_graph(graph: Any) -> None:
    """Refuse what is not an API-format graph before it reaches the server."""
    if not isinstance(graph, dict) or not graph:
        raise ValueError("the workflow must be a non-empty API-format dict {node_id: node}")
    if "nodes" in graph and "links" in graph:
        raise ValueError(
            "this is an editor (UI-format) workflow: convert it to API format before submitting"
        )
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise ValueError(f"node {node_id!r} of the workflow has no class_type")
        if not isinstance(node.get("inputs", {}), dict):
            raise ValueError(f"node {node_id!r} ({node['class_type']}): inputs must be a dict")


class _Socket:
    """The prompt's WebSocket, reconnected with the same clientId whenever it drops."""

    def __init__(self, client: ComfyUIClient, client_id: str) -> None:
        self.client = client
        self.url = client.ws_url(client_id)
        self.connection: ClientConnection | None = None
        self.failures = 0  # failed handshakes in a row
        self.quick_drops = 0  # connections in a row that died within a second
        self.connected_at = 0.0

    async def __aenter__(self) -> _Socket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.connection is not None

    async def connect(self, timeout: float) -> bool:
        if self.connection is not None:
            return True
        try:
            self.connection = await connect(
                self.url,
                additional_headers=self.client._headers,
                open_timeout=max(0.05, timeout),
                close_timeout=1,
                max_size=WS_MAX_MESSAGE_BYTES,
                # A follower that finished by polling leaves messages unread; a small queue
                # would stop reading and miss the server's close reply (a 1 s stall per render).
                max_queue=WS_MAX_QUEUE,
                logger=_ws_logger,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
            self.failures += 1
            log = logger.info if self.failures == 1 else logger.debug
            log(
                "no WebSocket to %s (%s); following by polling",
                self.client.server,
                type(exc).__name__,
            )
            return False
        if self.failures:
            logger.info("WebSocket to %s is back", self.client.server)
        self.failures = 0
        self.connected_at = time.monotonic()
        return True

    def retry_delay(self) -> float:
        """Back off after failed handshakes and after sockets that die right away (a proxy
        that closes every upgrade would otherwise make us reconnect in a tight loop)."""
        strikes = max(self.failures, self.quick_drops)
        return 0.0 if strikes == 0 else min(0.2 * 2**strikes, 5.0)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """One JSON message, or None (timeout, binary frame, or the socket dropped)."""
        _, message = await self.receive_frame(timeout)
        return message

    async def receive_frame(self, timeout: float) -> tuple[bool, dict[str, Any] | None]:
        """(whether a frame came, its JSON message if it is one: not for preview frames)."""
        if self.connection is None:
            return False, None
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                raw = await self.connection.recv()
        except TimeoutError:
            return False, None
        except ConnectionClosed:
            logger.info("WebSocket to %s dropped; reconnecting", self.client.server)
            lived = time.monotonic() - self.connected_at
            self.quick_drops = self.quick_drops + 1 if lived < 1.0 else 0
            self.connection = None
            return False, None
        if isinstance(raw, bytes):
            return True, None  # preview frames: outputs are read from /history instead
        try:
            message = json.loads(raw)
        except ValueError:
            return True, None
        return True, message if isinstance(message, dict) else None

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.connection = None


def parse_event(message: dict[str, Any], prompt_id: str) -> tuple[ProgressEvent | None, bool]:
    """(event for this prompt or None, whether this is the prompt's end-of-prompt signal)."""
    kind = message.get("type")
    data = message.get("data")
    if not isinstance(data, dict):
        return None, False
    owner = data.get("prompt_id")
    if owner is not None and owner != prompt_id:
        return None, False
    if kind == "executing":
        node = data.get("node")
        if node is None:
            return None, owner == prompt_id  # no prompt_id: a reconnect artefact, not the end
        return NodeExecuting(prompt_id, str(node), data.get("display_node")), False
    if owner is None and kind != "progress":
        return None, False
    if kind == "execution_start":
        return PromptStarted(prompt_id), False
    if kind == "execution_cached":
        return NodesCached(prompt_id, tuple(str(n) for n in data.get("nodes") or [])), False
    if kind == "progress":
        node = data.get("node")
        value, maximum = data.get("value", 0), data.get("max", 0)
        event = NodeProgress(prompt_id, None if node is None else str(node), value, maximum)
        return event, False
    if kind == "executed":
        return NodeExecuted(prompt_id, str(data.get("node")), dict(data.get("output") or {})), False
    if kind == "execution_success":
        return PromptSucceeded(prompt_id), False
    if kind == "execution_error":
        return PromptFailed(prompt_id, execution_failure(data)), False
    if kind == "execution_interrupted":
        return PromptInterrupted(prompt_id, data.get("node_id"), data.get("node_type")), False
    return None, False


class _Follower:
    def __init__(
        self, client: ComfyUIClient, http: httpx.AsyncClient, socket: _Socket, prompt_id: str
    ) -> None:
        self.client = client
        self.http = http
        self.socket = socket
        self.prompt_id = prompt_id

    async def events(self, raise_on_failure: bool) -> AsyncIterator[ProgressEvent]:
        client, s, prompt_id = self.client, self.client.settings, self.prompt_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.render_timeout_s
        next_poll = loop.time()
        next_connect = loop.time()
        unreachable_since: float | None = None
        outcome_seen = end_heard = False
        last_position: int | None = None
        while True:
            now = loop.time()
            if now >= deadline:
                raise ComfyUIRenderTimeout(
                    f"no end of prompt within {s.render_timeout_s:g} s; it may still run on the "
                    "server (a retry re-attaches to it)",
                    server=client.server,
                    prompt_id=prompt_id,
                )
            if not self.socket.connected and now >= next_connect:
                if await self.socket.connect(min(s.connect_timeout_s, deadline - now)):
                    next_poll = loop.time()  # whatever was said while we were away is lost
                else:
                    next_connect = loop.time() + self.socket.retry_delay()
            if loop.time() >= next_poll:
                next_poll = loop.time() + s.poll_interval_s
                try:
                    state = await client._lookup(self.http, prompt_id)
                    unreachable_since = None
                except ComfyUIUnavailable:
                    unreachable_since = unreachable_since or loop.time()
                    if loop.time() - unreachable_since >= s.unreachable_grace_s:
                        raise
                    state = None
                if state is not None and state.phase == "done" and state.entry is not None:
                    result = RenderResult.from_history(prompt_id, state.entry, client.server)
                    # The poll can overtake the socket: what the server already said (node
                    # outputs, the outcome) is passed on before the end, not dropped. After
                    # the socket's own end signal nothing of this prompt is left to read.
                    if not end_heard:
                        async for event in self.unread():
                            outcome_seen = outcome_seen or isinstance(event, _OUTCOMES)
                            yield event
                    if not outcome_seen:
                        yield _outcome_event(result)
                    yield PromptDone(prompt_id, result)
                    if raise_on_failure:
                        result.raise_for_status()
                    return
                if state is not None and state.phase == "absent":
                    raise client._absent(prompt_id)
                if (
                    state is not None
                    and state.phase == "queued"
                    and state.position != last_position
                ):
                    last_position = state.position
                    yield PromptQueued(prompt_id, state.position or 0)
            wait = max(0.0, min(next_poll, deadline) - loop.time())
            if not self.socket.connected:
                await asyncio.sleep(max(0.0, min(wait, next_connect - loop.time())))
                continue
            message = await self.socket.receive(wait)
            if message is None:
                if not self.socket.connected:
                    next_connect = loop.time() + self.socket.retry_delay()
                continue
            event, ended = parse_event(message, prompt_id)
            if event is not None:
                outcome_seen = outcome_seen or isinstance(event, _OUTCOMES)
                yield event
            if ended:
                end_heard = True
                next_poll = loop.time()  # the history entry is written: read it now

    async def unread(self) -> AsyncIterator[ProgressEvent]:
        """This prompt's events among the messages already waiting on the socket."""
        while self.socket.connected:
            came, message = await self.socket.receive_frame(_DRAIN_S)
            if not came:
                return
            if message is None:
                continue  # a preview frame: what follows it may still be this prompt's
            event, _ = parse_event(message, self.prompt_id)
            if event is not None:
                yield event


_OUTCOMES = (PromptSucceeded, PromptFailed, PromptInterrupted)
_DRAIN_S = 0.01  # a message already sent is read well within this


def _outcome_event(result: RenderResult) -> ProgressEvent:
    if result.status == "success":
        return PromptSucceeded(result.prompt_id)
    if result.status == "interrupted":
        return PromptInterrupted(result.prompt_id, result.interrupted_at)
    failure = result.failure or ExecutionFailure(
        node_id="?", node_type="?", exception_type="unknown", exception_message="no details"
    )
    return PromptFailed(result.prompt_id, failure)
