"""How the client reaches one ComfyUI server: settings, HTTP sessions, answer checks, the
WebSocket address, and credentials kept out of every log line and error message."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from blocks.comfyui.errors import (
    ComfyUIAuthError,
    ComfyUIProtocolError,
    ComfyUIResponseTooLarge,
    ComfyUIUnavailable,
)

websocket_logger = logging.getLogger("blocks.comfyui.websocket")


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
websocket_logger.addFilter(_redactor)


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    auth_header: str = "Authorization"
    auth_value: SecretStr | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    render_timeout_s: float = 1800.0
    poll_interval_s: float = 2.0
    socket_poll_interval_s: float = 15.0
    unreachable_grace_s: float = 180.0
    max_output_bytes: int = 2 * 1024**3
    max_object_info_bytes: int = 64 * 1024**2
    download_timeout_s: float = 900.0
    download_grace_s: float = 30.0
    min_download_bytes_per_s: float = 16 * 1024
    attempt_timeout_s: float = 1800.0 + 900.0  # render_timeout_s + download_timeout_s
    # Every other secret the block holds: redacted from server text like the token.
    other_secrets: tuple[SecretStr, ...] = ()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process. httpx builds one per client otherwise, loading the CA
    bundle each time (~20 ms of CPU), and a render opens several clients: measured in
    docs/benchmarks.md as a quarter of an episode's per-cut cost."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class Transport:
    """One server's address and credentials: HTTP sessions and requests whose failures are
    typed errors (never carrying the token), and the WebSocket URL."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.server = settings.base_url.rstrip("/")
        secret = settings.auth_value.get_secret_value() if settings.auth_value else ""
        self.headers = {settings.auth_header: secret} if secret else {}
        # The whole header value and the token after its scheme word: either may be echoed.
        others = [s.get_secret_value() for s in settings.other_secrets]
        self._secrets = {s for s in (secret, secret.split(" ", 1)[-1], *others) if s}
        _redactor.secrets.update(self._secrets)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def redact_value(self, value: Any) -> Any:
        """`value` (decoded JSON from the server) with every configured secret replaced in
        every string, keys included: the one place server text enters our code, so an echoed
        token never reaches an error, a log line, a Prefect state or the studio database."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        return value

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[httpx.AsyncClient]:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
        async with httpx.AsyncClient(
            base_url=self.server,
            headers=self.headers,
            timeout=timeout,
            follow_redirects=False,
            verify=_tls_context(),
        ) as http:
            yield http

    async def request(
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
        with self.unreachable(what, prompt_id):
            response = await http.request(method, path, **kwargs)
        return self.check(response, what, accept, prompt_id)

    @contextlib.contextmanager
    def unreachable(self, what: str, prompt_id: str | None = None) -> Iterator[None]:
        """A timeout or a connection that fails inside is `ComfyUIUnavailable` (retried after
        the server's health comes back), its reason with any secret redacted."""
        try:
            yield
        except httpx.TimeoutException:
            raise ComfyUIUnavailable(
                f"{what} timed out", server=self.server, prompt_id=prompt_id
            ) from None
        except httpx.TransportError as exc:
            reason = self.redact(str(exc)) or type(exc).__name__
            raise ComfyUIUnavailable(
                f"cannot reach ComfyUI for {what}: {reason}",
                server=self.server,
                prompt_id=prompt_id,
            ) from None

    def check(
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
            body = self.redact(response.text[:200].strip())
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

    def json(self, response: httpx.Response, what: str, prompt_id: str | None = None) -> Any:
        try:
            return self.redact_value(response.json())
        except ValueError:
            raise ComfyUIProtocolError(
                f"{what} did not answer JSON (is this a ComfyUI server?)",
                server=self.server,
                prompt_id=prompt_id,
            ) from None

    async def get_json_capped(self, http: httpx.AsyncClient, path: str, cap: int) -> Any:
        """`GET path` as JSON, streamed and refused past `cap` bytes (declared or read), so a
        server answering hundreds of megabytes is never held in memory."""
        what = f"GET {path}"
        with self.unreachable(what):
            async with http.stream("GET", path) as response:
                if response.status_code != 200:
                    await response.aread()
                self.check(response, what, (200,), None)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap:
                    raise self._too_large(what, f"{int(declared)} bytes declared", cap)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise self._too_large(what, f"more than {cap} bytes sent", cap)
        try:
            return self.redact_value(json.loads(bytes(body)))
        except ValueError:
            raise ComfyUIProtocolError(
                f"{what} did not answer JSON (is this a ComfyUI server?)", server=self.server
            ) from None

    def _too_large(self, what: str, seen: str, cap: int) -> ComfyUIResponseTooLarge:
        return ComfyUIResponseTooLarge(
            f"{what} answered over the {cap}-byte cap ({seen}): refused "
            "(raise the block's max_object_info_bytes if this server really has that many nodes)",
            server=self.server,
        )

    def ws_url(self, client_id: str) -> str:
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/ws"
        return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))
