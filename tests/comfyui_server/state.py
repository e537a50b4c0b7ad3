"""The test server's memory: queue, history, sockets, counters and injected faults.

Everything here runs on the server's own event loop; the test thread talks to it through
`ComfyUITestServer` (server.py), never directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.websockets import WebSocket

from .files import OutputStore
from .validation import NodeCatalog, ValidationOutcome, validate_prompt

MAXIMUM_HISTORY_SIZE = 10_000


@dataclass
class ExecutionFault:
    """Make a node fail during execution (matched by node id and/or class type)."""

    node_id: str | None = None
    class_type: str | None = None
    exception_type: str = "RuntimeError"
    message: str = "injected failure"

    def matches(self, node_id: str, class_type: str) -> bool:
        return (self.node_id is None or self.node_id == node_id) and (
            self.class_type is None or self.class_type == class_type
        )


@dataclass
class Faults:
    """Misbehaviour on demand. Tests set these attributes directly; one-shot ones reset."""

    execution_error: ExecutionFault | None = None
    stall_sockets: bool = False  # sockets stay open and answer pings, but nothing is sent
    refuse_sockets: bool = False  # new WebSocket handshakes are refused (HTTP 403)
    drop_sockets_at_tick: int | None = None  # one-shot: close every socket at that progress tick
    restart_at_tick: int | None = None  # one-shot: restart (queue + history lost) at that tick
    restart_downtime_s: float = 0.0  # how long the port refuses connections on that restart
    fail_http_requests: int = 0  # the next N HTTP requests answer 503
    view_without_length: bool = False  # /view streams chunked, with no Content-Length
    cut_next_view: bool = False  # one-shot: /view sends half the file, then drops the connection
    trickle_view: tuple[int, float] | None = None  # /view sends (N bytes, every S seconds)
    object_info_padding_bytes: int = 0  # /object_info also carries a node this many bytes big
    object_info_without_length: bool = False  # /object_info streams chunked, no Content-Length
    # A careless proxy or node that repeats the request's credential: the value of this
    # header is echoed into 400 validation messages and into execution_error messages.
    echo_header: str | None = None
    # Every valid prompt is refused (400) by its output nodes' custom validation with this
    # reason: a custom node checking what /object_info cannot show (a licence, a file).
    refuse_prompts: str | None = None


@dataclass(frozen=True)
class ServerStats:
    prompts_posted: int = 0  # POST /prompt requests, valid or not
    prompts_accepted: int = 0  # queued (200 answers)
    prompts_executed: int = 0  # taken off the queue and run (even if fully cached)
    prompts_completed: int = 0  # finished with a history entry (success, error, interrupt)
    nodes_executed: int = 0  # nodes really computed (not served from the cache)
    max_concurrent: int = 0  # most prompts executing at the same moment
    max_in_flight: int = 0  # most prompts queued + running at the same moment
    interrupts: int = 0
    restarts: int = 0
    ws_connections: int = 0
    queue_reads: int = 0  # GET /queue requests
    uploads: int = 0  # files written by POST /upload/image


@dataclass(order=True)
class QueueItem:
    number: float
    seq: int
    prompt_id: str = field(compare=False)
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    def as_list(self) -> list[Any]:
        number = int(self.number) if float(self.number).is_integer() else self.number
        return [number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class Run:
    item: QueueItem
    interrupted: bool = False
    ticks: int = 0


class Connection:
    """One WebSocket client; messages go through a queue so a slow socket never blocks."""

    def __init__(self, websocket: WebSocket, sid: str, state: ComfyState) -> None:
        self.websocket = websocket
        self.sid = sid
        self.state = state
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.supports_preview_metadata = False
        self.closed = False
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            if self.state.faults.stall_sockets:
                continue
            try:
                if isinstance(message, bytes):
                    await self.websocket.send_bytes(message)
                else:
                    await self.websocket.send_text(message)
            except Exception:
                return

    def put(self, message: str | bytes) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)

    async def close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self.sender.cancel()
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code)


def now_ms() -> int:
    return int(time.time() * 1000)


class ComfyState:
    def __init__(
        self,
        *,
        catalog: NodeCatalog,
        store: OutputStore,
        faults: Faults,
        render_time_s: float,
        progress_steps: int,
        parallel: int,
        cache: bool,
        system_stats: dict[str, Any],
        features: dict[str, Any],
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.faults = faults
        self.render_time_s = render_time_s
        self.progress_steps = progress_steps
        self.parallel = parallel
        self.cache_enabled = cache
        self.system_stats = system_stats
        self.features = features
        self.embeddings: list[str] = []
        self.model_folders: list[str] = []
        self.stats = ServerStats()
        self.sockets: dict[str, Connection] = {}
        self.stop_listening: Callable[[], Awaitable[None]] | None = None
        self.start_listening: Callable[[], Awaitable[None]] | None = None
        self._seq = itertools.count()
        self._reset_memory()
        self._workers: list[asyncio.Task[None]] = []
        self._restarting: asyncio.Task[None] | None = None

    # -- memory that a restart loses -------------------------------------------------------
    def _reset_memory(self) -> None:
        self.queue: list[QueueItem] = []
        self.running: dict[int, Run] = {}
        self.history: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.cache: dict[bytes, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self.number = 0
        self.wakeup = asyncio.Event()

    def count(self, **increments: int) -> None:
        values = {k: getattr(self.stats, k) + v for k, v in increments.items()}
        self.stats = replace(self.stats, **values)

    def _note_load(self) -> None:
        self.stats = replace(
            self.stats,
            max_concurrent=max(self.stats.max_concurrent, len(self.running)),
            max_in_flight=max(self.stats.max_in_flight, len(self.running) + len(self.queue)),
        )

    # -- workers ---------------------------------------------------------------------------
    def start_workers(self) -> None:
        from .executor import run_prompt  # executor imports this module

        async def worker() -> None:
            while True:
                while not self.queue:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                item = heapq.heappop(self.queue)
                run = Run(item)
                self.running[item.seq] = run
                self._note_load()
                self.queue_updated()
                try:
                    await run_prompt(self, run)
                finally:
                    self.running.pop(item.seq, None)

        self._workers = [asyncio.create_task(worker()) for _ in range(self.parallel)]

    async def stop_workers(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers = []

    async def restart(self, downtime_s: float = 0.0) -> None:
        """What a ComfyUI process restart looks like from outside: sockets drop, the port
        refuses connections for `downtime_s`, then the server is back with an empty memory
        (queue, running prompt, history, cache, prompt numbers). Files on disk stay."""
        self.count(restarts=1)
        await self.stop_workers()
        await self.close_sockets(code=1012)
        if downtime_s > 0 and self.stop_listening is not None:
            await self.stop_listening()
            await asyncio.sleep(downtime_s)
        self._reset_memory()
        if downtime_s > 0 and self.start_listening is not None:
            await self.start_listening()
        self.start_workers()

    async def wait_restarted(self) -> None:
        if self._restarting is not None:
            with contextlib.suppress(Exception):
                await self._restarting

    def schedule_restart(self, downtime_s: float) -> None:
        # Called from inside a worker that the restart cancels: run it as its own task.
        self._restarting = asyncio.get_running_loop().create_task(self.restart(downtime_s))

    # -- sockets ---------------------------------------------------------------------------
    def send(self, event: str, data: Any, sid: str | None) -> None:
        """ComfyUI's send_sync: to one client id, or to everyone when sid is None."""
        message = json.dumps({"type": event, "data": data})
        if sid is None:
            for connection in list(self.sockets.values()):
                connection.put(message)
        elif sid in self.sockets:
            self.sockets[sid].put(message)

    def send_bytes(self, payload: bytes, sid: str | None) -> None:
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for connection in targets:
            if connection is not None:
                connection.put(payload)

    def queue_remaining(self) -> int:
        return len(self.queue) + len(self.running)

    def queue_updated(self) -> None:
        self.send(
            "status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}}, None
        )

    async def close_sockets(self, code: int = 1001) -> None:
        connections = list(self.sockets.values())
        self.sockets.clear()
        for connection in connections:
            await connection.close(code)

    # -- HTTP-facing operations ------------------------------------------------------------
    def post_prompt(self, body: Any) -> tuple[int, dict[str, Any]]:
        self.count(prompts_posted=1)
        if not isinstance(body, dict):
            body = {}
        if "number" in body:
            number = float(body["number"])
        else:
            number = -self.number if body.get("front") else self.number
            self.number += 1
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return 400, {"error": error, "node_errors": {}}
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        outcome = validate_prompt(prompt, self.catalog)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if outcome.ok and self.faults.refuse_prompts is not None:
            outcome = _refused(prompt, outcome.good_outputs, self.faults.refuse_prompts)
        if not outcome.ok:
            return 400, outcome.body()
        item = QueueItem(
            number, next(self._seq), prompt_id, prompt, extra_data, outcome.good_outputs
        )
        heapq.heappush(self.queue, item)
        self.count(prompts_accepted=1)
        self._note_load()
        self.queue_updated()
        self.wakeup.set()
        number_out: float | int = int(number) if float(number).is_integer() else number
        return 200, {
            "prompt_id": prompt_id,
            "number": number_out,
            "node_errors": outcome.node_errors,
        }

    def queue_snapshot(self) -> dict[str, Any]:
        return {
            "queue_running": [run.item.as_list() for run in self.running.values()],
            "queue_pending": [item.as_list() for item in sorted(self.queue)],
        }

    def delete_from_queue(self, prompt_ids: list[str]) -> None:
        before = len(self.queue)
        self.queue = [item for item in self.queue if item.prompt_id not in prompt_ids]
        heapq.heapify(self.queue)
        if len(self.queue) != before:
            self.queue_updated()

    def clear_queue(self) -> None:
        self.queue = []
        self.queue_updated()

    def get_history(self, prompt_id: str | None, max_items: int | None) -> dict[str, Any]:
        if prompt_id is not None:
            entry = self.history.get(prompt_id)
            return {prompt_id: entry} if entry is not None else {}
        keys = list(self.history)
        if max_items is not None:
            keys = keys[-max_items:] if max_items > 0 else []
        return {k: self.history[k] for k in keys}

    def write_history(self, prompt_id: str, entry: dict[str, Any]) -> None:
        if len(self.history) >= MAXIMUM_HISTORY_SIZE:
            self.history.popitem(last=False)
        self.history[prompt_id] = entry

    def interrupt(self, prompt_id: str | None) -> None:
        for run in self.running.values():
            if prompt_id is None or run.item.prompt_id == prompt_id:
                run.interrupted = True
                self.count(interrupts=1)


def _refused(prompt: dict[str, Any], outputs: list[str], why: str) -> ValidationOutcome:
    """What ComfyUI answers when every output node's custom validation refuses it."""
    reason = {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": why,
        "extra_info": {},
    }
    node_errors = {
        node_id: {
            "errors": [dict(reason)],
            "dependent_outputs": [node_id],
            "class_type": prompt[node_id]["class_type"],
        }
        for node_id in outputs
    }
    error = {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "\n".join(f"{reason['message']}: {why}" for _ in outputs),
        "extra_info": {},
    }
    return ValidationOutcome(ok=False, error=error, node_errors=node_errors)
