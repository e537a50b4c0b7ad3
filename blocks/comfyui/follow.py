"""Following one prompt to its end: the prompt's WebSocket, its messages read as progress
events, and the follower that never trusts the socket alone.

The socket gives live progress and the end-of-prompt signal (`executing` with `node: null`),
while `/queue` then `/history` are polled on a timer (every `poll_interval_s` without the
socket, every `socket_poll_interval_s` with it) and after every (re)connect, under a hard
render deadline. A dropped socket therefore slows nothing down, a silent one by at most the
longer interval, and a prompt is called lost only when it is in neither the queue nor the
history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from blocks.comfyui.errors import (
    ComfyUIError,
    ComfyUIRenderTimeout,
    ComfyUITransientError,
    ComfyUIUnavailable,
)
from blocks.comfyui.models import (
    ExecutionFailure,
    NodeExecuted,
    NodeExecuting,
    NodeProgress,
    NodesCached,
    ProgressEvent,
    PromptDone,
    PromptFailed,
    PromptInterrupted,
    PromptQueued,
    PromptResult,
    PromptStarted,
    PromptState,
    PromptSucceeded,
    execution_failure,
)
from blocks.comfyui.transport import Transport, websocket_logger

logger = logging.getLogger("blocks.comfyui")
WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # preview frames can be large
WS_MAX_QUEUE = 4096  # messages buffered before reading pauses


class PromptSocket:
    """The prompt's WebSocket, reconnected with the same clientId whenever it drops."""

    def __init__(self, transport: Transport, client_id: str) -> None:
        self.transport = transport
        self.url = transport.ws_url(client_id)
        self.connection: ClientConnection | None = None
        self.failures = 0  # failed handshakes in a row
        self.quick_drops = 0  # connections in a row that died within a second
        self.connected_at = 0.0

    async def __aenter__(self) -> PromptSocket:
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
                additional_headers=self.transport.headers,
                open_timeout=max(0.05, timeout),
                close_timeout=1,
                max_size=WS_MAX_MESSAGE_BYTES,
                # A follower that finished by polling leaves messages unread; a small queue
                # would stop reading and miss the server's close reply (a 1 s stall per render).
                max_queue=WS_MAX_QUEUE,
                logger=websocket_logger,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
            self.failures += 1
            log = logger.info if self.failures == 1 else logger.debug
            log(
                "no WebSocket to %s (%s); following by polling",
                self.transport.server,
                type(exc).__name__,
            )
            return False
        if self.failures:
            logger.info("WebSocket to %s is back", self.transport.server)
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
            logger.info("WebSocket to %s dropped; reconnecting", self.transport.server)
            lived = time.monotonic() - self.connected_at
            self.quick_drops = self.quick_drops + 1 if lived < 1.0 else 0
            self.connection = None
            return False, None
        if isinstance(raw, bytes):
            return True, None  # preview frames: outputs are read from /history instead
        try:
            message = self.transport.redact_value(json.loads(raw))
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


class Follower:
    """The events of one prompt, from its socket and from `lookup` (where the prompt is, by
    `/queue` then `/history`; `/history` first once the socket said the prompt ended); `lost`
    is the error for a prompt found in neither."""

    def __init__(
        self,
        transport: Transport,
        socket: PromptSocket,
        prompt_id: str,
        *,
        lookup: Callable[[bool], Awaitable[PromptState]],
        lost: Callable[[], ComfyUIError],
    ) -> None:
        self.transport = transport
        self.socket = socket
        self.prompt_id = prompt_id
        self.lookup = lookup
        self.lost = lost

    async def events(
        self, raise_on_failure: bool, poll_at_once: bool = True
    ) -> AsyncIterator[ProgressEvent]:
        """`poll_at_once=False`: the socket heard the prompt from its submission on, so the
        first look at the queue waits for its interval."""
        server, s, prompt_id = self.transport.server, self.transport.settings, self.prompt_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.render_timeout_s
        next_poll = loop.time() + (0.0 if poll_at_once else self._poll_interval())
        next_connect = loop.time()
        unreachable_since: float | None = None
        outage_began: float | None = None  # the first unreachable moment, kept once back
        outcome_seen = end_heard = False
        last_position: int | None = None
        while True:
            now = loop.time()
            if now >= deadline:
                raise ComfyUIRenderTimeout(
                    f"no end of prompt within {s.render_timeout_s:g} s; it may still run on the "
                    "server (a retry re-attaches to it)",
                    server=server,
                    prompt_id=prompt_id,
                )
            if not self.socket.connected and now >= next_connect:
                if await self.socket.connect(min(s.connect_timeout_s, deadline - now)):
                    next_poll = loop.time()  # whatever was said while we were away is lost
                else:
                    next_connect = loop.time() + self.socket.retry_delay()
            if loop.time() >= next_poll:
                next_poll = loop.time() + self._poll_interval()
                try:
                    state = await self.lookup(end_heard)
                    unreachable_since = None
                except ComfyUIUnavailable as exc:
                    unreachable_since = unreachable_since or loop.time()
                    outage_began = outage_began or unreachable_since
                    if loop.time() - unreachable_since >= s.unreachable_grace_s:
                        exc.down_since = unreachable_since
                        raise
                    state = None
                if state is not None and state.phase == "done" and state.entry is not None:
                    result = PromptResult.from_history(prompt_id, state.entry, server)
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
                    lost = self.lost()
                    if isinstance(lost, ComfyUITransientError):
                        lost.down_since = outage_began  # lost to that outage: a restart
                    raise lost
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
                    # Without the socket, back to the short pace at once.
                    next_poll = min(next_poll, loop.time() + s.poll_interval_s)
                continue
            event, ended = parse_event(message, prompt_id)
            if event is not None:
                outcome_seen = outcome_seen or isinstance(event, _OUTCOMES)
                yield event
            if ended:
                end_heard = True
                next_poll = loop.time()  # the history entry is written: read it now

    def _poll_interval(self) -> float:
        s = self.transport.settings
        return s.socket_poll_interval_s if self.socket.connected else s.poll_interval_s

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


def _outcome_event(result: PromptResult) -> ProgressEvent:
    if result.status == "success":
        return PromptSucceeded(result.prompt_id)
    if result.status == "interrupted":
        return PromptInterrupted(result.prompt_id, result.interrupted_at)
    failure = result.failure or ExecutionFailure(
        node_id="?", node_type="?", exception_type="unknown", exception_message="no details"
    )
    return PromptFailed(result.prompt_id, failure)
