"""The `ComfyUIServer` block: one ComfyUI server as people configure it in the Prefect UI
(where it is, its credentials, timeouts and slots), and the client that talks to it.

Register with `prefect block register -m blocks.comfyui`. Several servers: `ComfyUIPool`
(blocks/comfyui/pool.py) with one Prefect global concurrency limit per server
(`ensure_concurrency_limits`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import Field, SecretStr, field_validator

from blocks.comfyui.client import ComfyUIClient
from blocks.comfyui.errors import ComfyUIServerNotFound
from blocks.comfyui.transport import ClientSettings

# Characters Prefect refuses in a global concurrency limit name.
_LIMIT_NAME_BANNED = re.compile(r"[/%&<>]")
_CLIENT = "_comfyui_client"  # where get_client keeps the client on the instance
BLOCK_TYPE = "anime-comfyui-server"


class ComfyUIServer(Block):
    """A ComfyUI server that renders the studio's workflows.

    `slots` is how many prompts this server may have at once (queued or running); it is
    enforced across processes and machines by the Prefect global concurrency limit
    `concurrency_limit` (created by `ensure_concurrency_limits`). The token is only ever
    sent in the configured header and never appears in logs or errors.
    """

    _block_type_name = "ComfyUI Server"
    _block_type_slug = BLOCK_TYPE
    _description = "A ComfyUI server render tasks submit workflows to, with its slots."
    # A generic Prefect logo until the studio hosts its own; docs: the routes it speaks.
    _logo_url = (
        "https://raw.githubusercontent.com/PrefectHQ/prefect/"
        "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/webhook.png"
    )
    _documentation_url = "https://docs.comfy.org/development/comfyui-server/comms_routes"
    # The import path people use (the class lives in blocks/comfyui/server.py).
    _code_example = """\
        ```python
        from blocks.comfyui import ComfyUIServer

        anime_comfyui_server_block = ComfyUIServer.load("BLOCK_NAME")
        ```"""

    base_url: str = Field(
        ...,
        description="Where ComfyUI answers, e.g. http://gpu-1:8188 (a path prefix behind a "
        "reverse proxy is fine).",
    )
    auth_token: SecretStr | None = Field(
        None, description="Token for the proxy in front of ComfyUI, if it wants one."
    )
    auth_header: str = Field("Authorization", description="Header that carries the token.")
    auth_scheme: str = Field(
        "Bearer", description="Word before the token in the header ('' sends the token alone)."
    )
    # Two by default: ComfyUI runs one prompt at a time, and the second waits in its own
    # queue, so the GPU starts the next render the moment one ends instead of after the
    # hand-over (download, slot release, next submission): docs/benchmarks.md measures it.
    slots: int = Field(
        2,
        ge=1,
        description="Prompts this server holds at once, running or queued (2: the next one "
        "waits in ComfyUI's queue, so the GPU never idles between renders).",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    read_timeout_s: float = Field(30.0, gt=0, description="Seconds to wait for an answer.")
    render_timeout_s: float = Field(
        1800.0, gt=0, description="Seconds a prompt may take, queue wait included."
    )
    poll_interval_s: float = Field(
        2.0,
        gt=0,
        description="Seconds between /queue + /history checks while following a prompt "
        "without its WebSocket.",
    )
    # With the socket up, the server says when the prompt ends (and the history is read then);
    # the check only catches a socket that went silent. Every check is two requests on a
    # server that is rendering: at 2 s, a farm's followers cost more than its renders' HTTP.
    socket_poll_interval_s: float = Field(
        15.0,
        gt=0,
        description="Seconds between /queue + /history checks while the prompt's WebSocket "
        "is connected.",
    )
    # A restarted ComfyUI (a crash, an update) is back in 20-60 s on a GPU host: an outage
    # shorter than this is waited out by health polling, and the render goes on.
    unreachable_grace_s: float = Field(
        180.0,
        gt=0,
        description="Outage window: seconds the server may be unreachable (restarting) "
        "before a render on it fails.",
    )
    max_output_bytes: int = Field(
        2 * 1024**3, ge=1, description="Size cap per downloaded output file, in bytes."
    )
    max_object_info_bytes: int = Field(
        64 * 1024**2, ge=1, description="Size cap of the server's /object_info answer, in bytes."
    )
    # A /view that trickles (a wedged proxy, a dying disk) must not hold a render forever:
    # past the grace period a download must keep a minimum rate, and it has a deadline.
    download_timeout_s: float = Field(
        900.0, gt=0, description="Seconds one output download may take in all."
    )
    download_grace_s: float = Field(
        30.0, ge=0, description="Seconds a download may start slowly before its rate counts."
    )
    min_download_bytes_per_s: float = Field(
        16 * 1024,
        ge=0,
        description="Slowest average rate, in bytes per second, a download may keep after "
        "its grace period (0: no minimum).",
    )
    # Each stage above has its own bound; this one bounds them together, so one render
    # attempt (the prompt in ComfyUI's queue and running, then every download, outages
    # waited out included) ends at a time a studio can plan for, whatever its outputs.
    attempt_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds one render attempt may take in all, from submitting the "
        "prompt to its last output on disk (default: render_timeout_s + "
        "download_timeout_s). Past it the prompt is withdrawn and the attempt fails.",
    )
    concurrency_limit_name: str | None = Field(
        None,
        description=(
            "Prefect global concurrency limit for the slots (default comfyui:<host:port>)."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {value!r}")
        if parts.username or parts.password:
            raise ValueError("base_url must not carry credentials: use auth_token")
        return value.strip().rstrip("/")

    # -- identity --------------------------------------------------------------------------
    @property
    def concurrency_limit(self) -> str:
        """The name of this server's global concurrency limit. Derived from host:port by
        default, so every block pointing at one machine shares one limit."""
        if self.concurrency_limit_name:
            return self.concurrency_limit_name
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.hostname}:{port}{parts.path.rstrip('/')}"
        return "comfyui:" + _LIMIT_NAME_BANNED.sub("_", where)

    # -- the client ------------------------------------------------------------------------
    def get_client(self) -> ComfyUIClient:
        """The client for this server: made once per block instance and kept on it (made
        again only when a field changed since). It keeps no connection open, so one client
        serves every concurrent call, from any event loop."""
        settings = self._client_settings()
        client = self.__dict__.get(_CLIENT)
        if client is None or client.settings != settings:
            client = ComfyUIClient(settings)
            # In the instance's __dict__ but not a field: never saved, dumped, shown or
            # compared (pydantic compares fields only).
            self.__dict__[_CLIENT] = client
        return client

    def __getstate__(self) -> dict[Any, Any]:
        # A pickled block is its fields, as before get_client: the client is made again.
        state = super().__getstate__()
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k != _CLIENT}
        return state

    def _client_settings(self) -> ClientSettings:
        token = self.auth_token.get_secret_value() if self.auth_token else ""
        value = f"{self.auth_scheme} {token}".strip() if self.auth_scheme else token
        return ClientSettings(
            base_url=self.base_url,
            auth_header=self.auth_header,
            auth_value=SecretStr(value) if token else None,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            render_timeout_s=self.render_timeout_s,
            poll_interval_s=self.poll_interval_s,
            socket_poll_interval_s=self.socket_poll_interval_s,
            unreachable_grace_s=self.unreachable_grace_s,
            max_output_bytes=self.max_output_bytes,
            max_object_info_bytes=self.max_object_info_bytes,
            download_timeout_s=self.download_timeout_s,
            download_grace_s=self.download_grace_s,
            min_download_bytes_per_s=self.min_download_bytes_per_s,
            attempt_timeout_s=self.attempt_timeout_s
            or self.render_timeout_s + self.download_timeout_s,
            other_secrets=self._other_secrets(),
        )

    def _other_secrets(self) -> tuple[SecretStr, ...]:
        """Every SecretStr field but the token (sent as the header, redacted already)."""
        found = (getattr(self, name) for name in type(self).model_fields if name != "auth_token")
        return tuple(s for s in found if isinstance(s, SecretStr))


# -- finding servers ---------------------------------------------------------------------------


def is_url(name_or_url: str) -> bool:
    return name_or_url.strip().lower().startswith(("http://", "https://"))


async def saved_servers() -> list[tuple[str, ComfyUIServer]]:
    """(block name, server) for every ComfyUI server block saved in Prefect, by name."""
    async with get_client() as client:
        try:
            documents = await client.read_block_documents_by_type(BLOCK_TYPE)
        except ObjectNotFound:  # the block type was never registered: no servers yet
            return []
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:
                return []
            raise
    found = [
        (doc.name, ComfyUIServer._from_block_document(doc))
        for doc in documents
        if doc.name and not doc.is_anonymous
    ]
    return sorted(found, key=lambda pair: pair[0])


async def find_server(name_or_url: str) -> ComfyUIServer:
    """A server by block name, or by URL: a saved block with that URL when there is one (its
    token and slots), else a server with the defaults (2 slots, no token)."""
    if is_url(name_or_url):
        wanted = ComfyUIServer(base_url=name_or_url)
        for _, saved in await saved_servers():
            if saved.base_url == wanted.base_url:
                return saved
        return wanted
    try:
        return await ComfyUIServer.aload(name_or_url)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
    known = [name for name, _ in await saved_servers()]
    raise ComfyUIServerNotFound(
        f"no ComfyUI server named {name_or_url!r} (saved: {', '.join(known) or 'none'}): "
        f"add it with `anime comfyui add {name_or_url} http://HOST:8188`, or give its URL"
    )
