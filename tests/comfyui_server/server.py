"""`ComfyUITestServer`: the protocol-faithful ComfyUI stand-in, on loopback, in-process.

It runs uvicorn + Starlette on its own event loop in a daemon thread, so it serves sync and
async tests alike and outlives any one test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from .app import build_app
from .files import OutputStore
from .nodes import load_image_validator
from .state import ComfyState, Faults, ServerStats
from .validation import NodeCatalog

SAMPLES = Path(__file__).parent / "samples"
T = TypeVar("T")

_object_info_cache: dict[str, Any] | None = None


def sample(name: str) -> Any:
    """A captured answer from samples/ (HTTP samples are unwrapped to their body)."""
    data = json.loads((SAMPLES / name).read_text())
    if isinstance(data, dict) and set(data) == {"status", "body"}:
        return data["body"]
    return data


def default_object_info() -> dict[str, Any]:
    global _object_info_cache
    if _object_info_cache is None:
        _object_info_cache = sample("object_info.json")
    return _object_info_cache


class ComfyUITestServer:
    """A ComfyUI server for tests: real HTTP + WebSocket on 127.0.0.1, real output files.

    Usage::

        with ComfyUITestServer(tmp_path, render_time_s=0.1) as comfy:
            block = ComfyUIServer(base_url=comfy.url)
            ...
            assert comfy.stats.prompts_executed == 1

    Knobs (constructor): `render_time_s` (time a prompt spends in its nodes), `progress_steps`
    (progress ticks per node), `parallel` (prompts run at once; 1 like ComfyUI), `cache`
    (ComfyUI's cache of the last prompt's node outputs), `auth` (header name and exact value
    every request must carry), `extra_choices` (add e.g. model files to combo inputs:
    `{"ckpt_name": ["sd15.safetensors"]}`), `object_info` (node definitions; default: the
    captured ComfyUI 0.3.64 set).

    Misbehaviour: set attributes of `faults` (see `Faults`), or call `restart()` /
    `drop_sockets()`. Evidence: `stats` (counters incl. executed prompts and the most
    prompts ever in flight), `history()`, `queue()`, `output_files()`.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        render_time_s: float = 0.1,
        progress_steps: int = 4,
        parallel: int = 1,
        cache: bool = True,
        auth: tuple[str, str] | None = None,
        extra_choices: dict[str, list[str]] | None = None,
        object_info: dict[str, Any] | None = None,
    ) -> None:
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="comfyui-test-")
            root = Path(self._tmp.name)
        self.root = Path(root)
        self.store = OutputStore(self.root)
        self.faults = Faults()
        self._auth = auth
        self._catalog = NodeCatalog(
            object_info if object_info is not None else default_object_info(),
            extra_choices=extra_choices,
            custom_validators={"LoadImage": load_image_validator(self.store.dirs["input"])},
        )
        self._settings = {
            "render_time_s": render_time_s,
            "progress_steps": progress_steps,
            "parallel": parallel,
            "cache": cache,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: ComfyState | None = None
        self._uvicorn: uvicorn.Server | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ComfyUITestServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._boot())
            except BaseException as exc:  # surfaced to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=main, name="comfyui-test-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError("the ComfyUI test server did not start") from failure[0]
        return self

    async def _boot(self) -> None:
        state = ComfyState(
            catalog=self._catalog,
            store=self.store,
            faults=self.faults,
            system_stats=sample("system_stats.json"),
            features=sample("features.json"),
            **self._settings,
        )
        state.embeddings = sample("embeddings.json")
        state.model_folders = sample("models.json")
        state.stop_listening = self._unlisten
        state.start_listening = self._listen
        self._state = state
        state.start_workers()
        await self._listen()

    async def _listen(self) -> None:
        # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say they are TCP;
        # without it every answer waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        assert self._state is not None
        config = uvicorn.Config(
            build_app(self._state, self._auth),
            lifespan="off",
            ws="websockets-sansio",
            log_level="critical",
            access_log=False,
        )
        server = uvicorn.Server(config)
        # uvicorn's serve() polls for shutdown every 0.1 s and then sleeps another 0.1 s;
        # starting and stopping its listener directly makes a test server stop in ~10 ms.
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._uvicorn = server

    async def _unlisten(self) -> None:
        server = self._uvicorn
        if server is None:
            return
        self._uvicorn = None
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while server.server_state.tasks and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(server.server_state.tasks):
            task.cancel()
        for listener in server.servers:
            await listener.wait_closed()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._state is not None
            await self._state.wait_restarted()
            await self._state.stop_workers()
            await self._state.close_sockets()
            await self._unlisten()

        try:
            self._run(shutdown, timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> ComfyUITestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        if self._loop is None:
            raise RuntimeError("the ComfyUI test server is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def _read(self, fn: Callable[[ComfyState], T]) -> T:
        async def read() -> T:
            assert self._state is not None
            return fn(self._state)

        return self._run(read)

    # -- misbehaviour ----------------------------------------------------------------------
    def restart(self, downtime_s: float = 0.0) -> None:
        """Lose queue, running prompt, history and cache, like a ComfyUI process restart.
        With `downtime_s`, the port refuses connections for that long."""

        async def go() -> None:
            assert self._state is not None
            await self._state.restart(downtime_s)

        self._run(go, timeout=30 + downtime_s)

    def drop_sockets(self) -> None:
        """Close every WebSocket from the server side (a network drop, a proxy timeout)."""

        async def go() -> None:
            assert self._state is not None
            await self._state.close_sockets(code=1001)

        self._run(go)

    def use_hostile_names(self, names: list[tuple[str, str]] | None) -> None:
        """Report saved files under these (subfolder, filename) pairs, cycling."""
        self.store.use_hostile_names(names)

    def add_input_file(self, name: str, data: bytes) -> Path:
        """Put a file in the input folder (what `/upload/image` would do) for LoadImage."""
        path = self.store.input_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    # -- evidence --------------------------------------------------------------------------
    @property
    def stats(self) -> ServerStats:
        return self._read(lambda state: state.stats)

    @property
    def in_flight(self) -> int:
        """Prompts queued or running right now."""
        return self._read(lambda state: state.queue_remaining())

    def history(self) -> dict[str, Any]:
        return self._read(lambda state: json.loads(json.dumps(state.history)))

    def queue(self) -> dict[str, Any]:
        return self._read(lambda state: json.loads(json.dumps(state.queue_snapshot())))

    def connected_clients(self) -> list[str]:
        return self._read(lambda state: sorted(state.sockets))

    def output_files(self) -> list[Path]:
        return self.store.all_files()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until nothing is queued or running."""
        deadline = time.monotonic() + timeout
        while self._read(lambda state: state.queue_remaining()) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the ComfyUI test server is still busy")
            time.sleep(0.01)
