"""The async ComfyUI client behind the `ComfyUIServer` block: ComfyUI's HTTP protocol
(queue, history, object_info, system_stats, submit, cancel), with following a prompt
(`blocks.comfyui.follow`) and downloading its outputs (`blocks.comfyui.downloads`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from blocks.comfyui.downloads import download_output
from blocks.comfyui.errors import (
    ComfyUICancelled,
    ComfyUIError,
    ComfyUIPromptConflict,
    ComfyUIPromptLost,
    ComfyUIProtocolError,
    ComfyUIValidationError,
)
from blocks.comfyui.follow import Follower, PromptSocket
from blocks.comfyui.models import (
    CancelOutcome,
    DownloadedFile,
    HealthReport,
    OutputFile,
    ProgressEvent,
    PromptDone,
    PromptResult,
    PromptState,
    ServerEnvironment,
    Submission,
    client_id_for,
)
from blocks.comfyui.transport import ClientSettings, Transport
from workflows.graph import graph_sha256

logger = logging.getLogger("blocks.comfyui")

# Prompts this process cancelled: a prompt deleted from the queue vanishes from the server,
# so without this note a follower would report it lost (and a retry would render it).
_cancelled: OrderedDict[tuple[str, str], None] = OrderedDict()


def _note_cancelled(server: str, prompt_id: str) -> None:
    _cancelled[(server, prompt_id)] = None
    while len(_cancelled) > 10_000:
        _cancelled.popitem(last=False)


class ComfyUIClient:
    """One ComfyUI server's API. Every method opens its own HTTP session, so one client serves
    any number of concurrent calls, from any event loop."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.transport = Transport(settings)
        self.server = self.transport.server

    async def _get(
        self, http: httpx.AsyncClient, path: str, what: str, *, prompt_id: str | None = None
    ) -> Any:
        """The JSON answer of `GET path` (`what` names it if it is not JSON)."""
        response = await self.transport.request(http, "GET", path, prompt_id=prompt_id)
        return self.transport.json(response, what)

    # -- small reads -----------------------------------------------------------------------
    async def queue(self) -> dict[str, Any]:
        async with self.transport.session() as http:
            return await self._get(http, "/queue", "GET /queue")

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        path = (
            "/object_info" if class_type is None else f"/object_info/{quote(class_type, safe='')}"
        )
        async with self.transport.session() as http:
            cap = self.settings.max_object_info_bytes
            return await self.transport.get_json_capped(http, path, cap)

    async def system_stats(self) -> ServerEnvironment:
        async with self.transport.session() as http:
            stats = await self._get(http, "/system_stats", "stats")
        return ServerEnvironment.from_stats(stats if isinstance(stats, dict) else {})

    async def health(self) -> HealthReport:
        """Reachable, authorised, and how busy: never raises."""
        started = time.monotonic()
        try:
            async with self.transport.session() as http:
                stats = await self._get(http, "/system_stats", "stats")
                status = await self._get(http, "/prompt", "GET /prompt")
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
        async with self.transport.session() as http:
            return await self._lookup(http, prompt_id)

    async def _lookup(
        self, http: httpx.AsyncClient, prompt_id: str, ended: bool = False
    ) -> PromptState:
        """``ended``: the socket said the prompt ended, so its history entry is looked for
        first (the queue is read only where it is missing): one request a render, not two."""
        if ended and (done := await self._history_state(http, prompt_id)) is not None:
            return done
        # Queue first, history second: ComfyUI writes the history entry before it drops a
        # prompt from the running list, so "in neither" seen in this order means lost.
        queue = await self._get(http, "/queue", "queue", prompt_id=prompt_id)
        if not isinstance(queue, dict):
            raise ComfyUIProtocolError(
                "GET /queue did not answer a queue", server=self.server, prompt_id=prompt_id
            )
        # A queue item and a history entry's "prompt" are both
        # [number, prompt id, graph, extra data, outputs to execute].
        for item in queue.get("queue_running") or []:
            if len(item) > 1 and item[1] == prompt_id:
                return PromptState("running", number=item[0], graph=_graph_of(item))
        pending = sorted(
            (i for i in queue.get("queue_pending") or [] if len(i) > 1), key=lambda i: i[0]
        )
        for position, item in enumerate(pending):
            if item[1] == prompt_id:
                return PromptState(
                    "queued", position=position, number=item[0], graph=_graph_of(item)
                )
        return await self._history_state(http, prompt_id) or PromptState("absent")

    async def _history_state(self, http: httpx.AsyncClient, prompt_id: str) -> PromptState | None:
        """The prompt done, from its `/history` entry; None where it has none."""
        path = f"/history/{quote(prompt_id, safe='')}"
        history = await self._get(http, path, path, prompt_id=prompt_id)
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if not isinstance(entry, dict):
            return None
        prompt = entry.get("prompt") or [None]
        return PromptState("done", number=prompt[0], entry=entry, graph=_graph_of(prompt))

    async def result(self, prompt_id: str) -> PromptResult:
        """The finished prompt's outputs from `/history` (raises while it is not finished)."""
        async with self.transport.session() as http:
            state = await self._lookup(http, prompt_id)
        if state.phase == "done" and state.entry is not None:
            return PromptResult.from_history(prompt_id, state.entry, self.server)
        if state.phase == "absent":
            raise self._absent(prompt_id)
        raise ComfyUIError(
            f"the prompt is still {state.phase}", server=self.server, prompt_id=prompt_id
        )

    def _not_this_render(
        self, state: PromptState, graph: dict[str, Any], prompt_id: str
    ) -> str | None:
        """Why the prompt the server holds under this id is not the one to re-attach to, or
        None when it is. A finished one that failed (an earlier run's error or cancel, since
        fixed) or holds another graph (a template changed since a crashed run queued it)
        is submitted anew; one that still waits or runs with another graph is refused."""
        if state.graph is not None and state.graph != graph:
            theirs, ours = graph_sha256(state.graph)[:12], graph_sha256(graph)[:12]
            if state.phase != "done":
                raise ComfyUIPromptConflict(
                    f"the server is already {state.phase} a prompt under this id with another "
                    f"graph (sha256 {theirs}, this render's {ours}): a crashed run queued it "
                    "before its template changed, or a copy of this database shares the "
                    "server; cancel it there or wait for it to end, then run again",
                    server=self.server,
                    prompt_id=prompt_id,
                )
            return f"holds another graph (sha256 {theirs}, this render's {ours})"
        if state.phase == "done" and state.entry is not None:
            ended = PromptResult.from_history(prompt_id, state.entry, self.server).status
            if ended != "success":
                return f"ended {ended} in an earlier run"
        return None

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
        async with self.transport.session() as http:
            return await self._submit(http, graph, prompt_id, extra_data)

    async def _submit(
        self,
        http: httpx.AsyncClient,
        graph: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any] | None,
        look_first: bool = True,
    ) -> Submission:
        check_api_graph(graph)
        client_id = client_id_for(prompt_id)
        state = await self._lookup(http, prompt_id) if look_first else PromptState("absent")
        if state.phase != "absent":
            if (stale := self._not_this_render(state, graph, prompt_id)) is None:
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
            # A finished prompt that is not this render's result: its history entry goes, so
            # that this render's own is the one found under the id from now on.
            logger.info(
                "prompt %s on %s %s: submitting this render anew", prompt_id, self.server, stale
            )
            await self.transport.request(
                http, "POST", "/history", json={"delete": [prompt_id]}, prompt_id=prompt_id
            )
        body = {
            "prompt": graph,
            "client_id": client_id,
            "prompt_id": prompt_id,
            "extra_data": dict(extra_data or {}),
        }
        response = await self.transport.request(
            http, "POST", "/prompt", accept=(200, 400), json=body, prompt_id=prompt_id
        )
        answer = self.transport.json(response, "POST /prompt", prompt_id)
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
        async with (
            self.transport.session() as http,
            PromptSocket(self.transport, client_id_for(prompt_id)) as socket,
        ):
            follower = self._follower(http, socket, prompt_id)
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
        new_prompt: bool = False,
    ) -> PromptResult:
        """Submit (or re-attach) and follow to the end, with the socket opened *before* the
        prompt is queued so that no early progress is missed. `new_prompt`: the caller knows
        no server has this prompt id yet, so it is submitted without looking for it first."""
        async with (
            self.transport.session() as http,
            PromptSocket(self.transport, client_id_for(prompt_id)) as socket,
        ):
            listening = await socket.connect(self.settings.connect_timeout_s)
            submission = await self._submit(
                http, graph, prompt_id, extra_data, look_first=not new_prompt
            )
            follower = self._follower(http, socket, prompt_id)
            # Queued just now with the socket already open: the socket hears all of it, so the
            # first look at the queue waits for its interval. A re-attached prompt (or no
            # socket) is looked at at once: it may have finished already.
            heard_all = listening and not submission.reattached
            result: PromptResult | None = None
            async for event in follower.events(raise_on_failure, poll_at_once=not heard_all):
                if on_event is not None:
                    outcome = on_event(event)
                    if asyncio.iscoroutine(outcome):
                        await outcome
                if isinstance(event, PromptDone):
                    result = event.result
            assert result is not None
            return result

    def _follower(self, http: httpx.AsyncClient, socket: PromptSocket, prompt_id: str) -> Follower:
        return Follower(
            self.transport,
            socket,
            prompt_id,
            lookup=functools.partial(self._lookup, http, prompt_id),
            lost=functools.partial(self._absent, prompt_id),
        )

    # -- cancel ----------------------------------------------------------------------------
    async def cancel(self, prompt_id: str) -> CancelOutcome:
        """Interrupt the prompt if it runs, take it off the queue if it waits."""
        async with self.transport.session() as http:
            return await self._cancel(http, prompt_id)

    async def dequeue(self, prompt_ids: Collection[str]) -> set[str]:
        """Take those of ``prompt_ids`` that wait in the queue off it, in one request; returns
        them. Cancelling several prompts starts here: an interrupt makes the server start the
        next prompt of its queue, which may be one of them."""
        wanted = set(prompt_ids)
        async with self.transport.session() as http:
            queue = await self._get(http, "/queue", "GET /queue")
            pending = queue.get("queue_pending") if isinstance(queue, dict) else None
            waiting = {i[1] for i in pending or [] if len(i) > 1 and i[1] in wanted}
            if waiting:
                await self._delete_from_queue(http, sorted(waiting))
        return waiting

    async def _delete_from_queue(self, http: httpx.AsyncClient, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            _note_cancelled(self.server, prompt_id)
        await self.transport.request(
            http,
            "POST",
            "/queue",
            json={"delete": prompt_ids},
            prompt_id=prompt_ids[0] if len(prompt_ids) == 1 else None,
        )

    async def _cancel(self, http: httpx.AsyncClient, prompt_id: str) -> CancelOutcome:
        for _ in range(5):
            state = await self._lookup(http, prompt_id)
            if state.phase == "running":
                _note_cancelled(self.server, prompt_id)
                await self.transport.request(
                    http, "POST", "/interrupt", json={"prompt_id": prompt_id}, prompt_id=prompt_id
                )
                logger.info("interrupted prompt %s on %s", prompt_id, self.server)
                return "interrupted"
            if state.phase == "queued":
                await self._delete_from_queue(http, [prompt_id])
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
        async with self.transport.session() as http:
            return await download_output(self.transport, http, output, Path(dest_dir), max_bytes)

    async def has_output(self, output: OutputFile) -> bool:
        """Whether `/view` serves this file (its body is not read)."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        what = f"GET /view ({output.filename!r})"
        async with self.transport.session() as http:
            with self.transport.unreachable(what):
                async with http.stream("GET", "/view", params=params) as response:
                    if response.status_code in (200, 404):
                        return response.status_code == 200
                    await response.aread()
                    self.transport.check(response, what, (200, 404), None)
                    return False

    async def download_all(
        self, result: PromptResult, dest_dir: Path, *, max_bytes: int | None = None
    ) -> list[DownloadedFile]:
        async with self.transport.session() as http:
            return [
                await download_output(self.transport, http, output, Path(dest_dir), max_bytes)
                for output in result.outputs
            ]

    # -- inputs ----------------------------------------------------------------------------
    async def upload_image(self, path: Path, name: str, *, ask_again: bool = False) -> str:
        """Put a local image into the server's input folder as `name` (a content-addressed
        name: the same bytes always get the same name), once: an image already there under
        that name is not sent again. `ask_again`: ask the server even if this process sent it
        (a restart may have wiped its input folder). Returns the name LoadImage reads it by."""
        if not ask_again and name in _uploaded.get(self.server, set()):
            return name
        async with self.transport.session() as http:
            there = await self.transport.request(
                http,
                "GET",
                "/view",
                accept=(200, 404),
                params={"filename": name, "type": "input"},
            )
            if there.status_code != 200:
                data = Path(path).read_bytes()
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                answer = await self.transport.request(
                    http,
                    "POST",
                    "/upload/image",
                    files={"image": (name, data, mime)},
                    data={"type": "input", "overwrite": "true"},
                )
                stored = self.transport.json(answer, "POST /upload/image").get("name")
                if stored != name:
                    raise ComfyUIProtocolError(
                        f"/upload/image stored {path} as {stored!r}, not {name!r}",
                        server=self.server,
                    )
        _uploaded.setdefault(self.server, set()).add(name)
        return name


# Content-addressed names this process knows each server holds (server -> names).
_uploaded: dict[str, set[str]] = {}


def _graph_of(item: Any) -> Any:
    return item[2] if isinstance(item, list | tuple) and len(item) > 2 else None


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
