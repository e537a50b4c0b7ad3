"""ComfyUI's HTTP routes and WebSocket, as a Starlette app over a `ComfyState`.

Every route is also served under `/api/...`, like ComfyUI does for its web editor.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .state import ComfyState, Connection

SERVER_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"


def build_app(state: ComfyState, auth: tuple[str, str] | None = None) -> ASGIApp:
    async def post_prompt(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse(SERVER_TROUBLE, status_code=500)
        echo = state.faults.echo_header
        echoed = request.headers.get(echo, "") if echo else ""
        fault = state.faults.execution_error
        if echoed and fault is not None and echoed not in fault.message:
            state.faults.execution_error = replace(fault, message=f"{fault.message} ({echoed})")
        status, answer = state.post_prompt(body)
        if echoed and status == 400 and isinstance(answer.get("error"), dict):
            answer["error"]["message"] += f" for request with {echo}: {echoed}"
            for entry in (answer.get("node_errors") or {}).values():
                for reason in entry.get("errors", []):
                    reason["details"] = f"{reason.get('details', '')} [{echoed}]"
        return JSONResponse(answer, status_code=status)

    async def get_prompt(request: Request) -> Response:
        return JSONResponse({"exec_info": {"queue_remaining": state.queue_remaining()}})

    async def get_queue(request: Request) -> Response:
        state.count(queue_reads=1)
        return JSONResponse(state.queue_snapshot())

    async def post_queue(request: Request) -> Response:
        body = await _json_or_empty(request)
        if body.get("clear"):
            state.clear_queue()
        if "delete" in body:
            state.delete_from_queue([str(x) for x in body["delete"]])
        return Response(status_code=200)

    async def get_history(request: Request) -> Response:
        max_items = request.query_params.get("max_items")
        return JSONResponse(state.get_history(None, int(max_items) if max_items else None))

    async def get_history_item(request: Request) -> Response:
        return JSONResponse(state.get_history(request.path_params["prompt_id"], None))

    async def post_history(request: Request) -> Response:
        body = await _json_or_empty(request)
        if body.get("clear"):
            state.history.clear()
        for prompt_id in body.get("delete", []):
            state.history.pop(str(prompt_id), None)
        return Response(status_code=200)

    async def post_interrupt(request: Request) -> Response:
        body = await _json_or_empty(request)
        state.interrupt(str(body["prompt_id"]) if body.get("prompt_id") else None)
        return Response(status_code=200)

    async def get_object_info(request: Request) -> Response:
        padding = state.faults.object_info_padding_bytes
        if not padding and not state.faults.object_info_without_length:
            return JSONResponse(state.catalog.object_info)
        body = json.dumps(state.catalog.object_info).encode()
        if padding:  # one more node whose description is `padding` bytes of text
            body = body[:-1] + b', "Huge": {"description": "' + b"x" * padding + b'"}}'
        if state.faults.object_info_without_length:
            return StreamingResponse(_pieces(body), media_type="application/json")
        return Response(body, media_type="application/json")

    async def get_object_info_node(request: Request) -> Response:
        name = request.path_params["node_class"]
        definition = state.catalog.get(name)
        return JSONResponse({name: definition} if definition is not None else {})

    async def get_system_stats(request: Request) -> Response:
        return JSONResponse(state.system_stats)

    async def get_features(request: Request) -> Response:
        return JSONResponse(state.features)

    async def get_embeddings(request: Request) -> Response:
        return JSONResponse(state.embeddings)

    async def get_models(request: Request) -> Response:
        return JSONResponse(state.model_folders)

    async def get_view(request: Request) -> Response:
        query = request.query_params
        found = state.store.resolve_view(
            query.get("filename", ""), query.get("subfolder", ""), query.get("type", "output")
        )
        if isinstance(found, int):
            return Response(status_code=found)
        content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{found.name}"'}
        if state.faults.cut_next_view:
            state.faults.cut_next_view = False
            size = found.stat().st_size
            headers["Content-Length"] = str(size)
            return StreamingResponse(
                _cut_short(found, size // 2), media_type=content_type, headers=headers
            )
        if state.faults.trickle_view is not None:
            size, every = state.faults.trickle_view
            return StreamingResponse(
                _trickle(found, size, every), media_type=content_type, headers=headers
            )
        if state.faults.view_without_length:
            return StreamingResponse(_chunks(found), media_type=content_type, headers=headers)
        return FileResponse(found, media_type=content_type, headers=headers)

    async def post_upload_image(request: Request) -> Response:
        # ComfyUI's image_upload (server.py): multipart `image`, optional `type` (input, temp,
        # output), `subfolder`, `overwrite`; without overwrite an existing name gets " (1)"
        # unless its bytes are the same; answers {"name", "subfolder", "type"}.
        form = await request.form()
        image = form.get("image")
        if image is None or isinstance(image, str) or not image.filename:
            return Response(status_code=400)
        kind = str(form.get("type") or "input")
        folder = state.store.dirs.get(kind if kind in ("input", "temp", "output") else "input")
        assert folder is not None
        subfolder = str(form.get("subfolder") or "")
        target_dir = (folder / subfolder).resolve()
        if target_dir != folder.resolve() and folder.resolve() not in target_dir.parents:
            return Response(status_code=400)
        data = await image.read()
        name = image.filename
        target = target_dir / name
        if target.resolve().parent != target_dir:
            return Response(status_code=400)
        if str(form.get("overwrite")) not in ("true", "1"):
            stem, suffix, i = Path(name).stem, Path(name).suffix, 1
            while target.exists() and target.read_bytes() != data:
                name = f"{stem} ({i}){suffix}"
                target, i = target_dir / name, i + 1
        target_dir.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        state.count(uploads=1)
        return JSONResponse({"name": name, "subfolder": subfolder, "type": kind})

    async def websocket_endpoint(websocket: WebSocket) -> None:
        if state.faults.refuse_sockets:
            await websocket.close(code=1013)
            return
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        await websocket.accept()
        connection = Connection(websocket, sid, state)
        previous = state.sockets.get(sid)
        state.sockets[sid] = connection  # a reconnect with the same clientId takes over
        if previous is not None:
            previous.closed = True
        state.count(ws_connections=1)
        status = {"exec_info": {"queue_remaining": state.queue_remaining()}}
        connection.put(json.dumps({"type": "status", "data": {"status": status, "sid": sid}}))
        try:
            while True:
                text = await websocket.receive_text()
                _client_message(state, connection, text)
        except (WebSocketDisconnect, RuntimeError, KeyError):
            pass
        finally:
            connection.closed = True
            connection.sender.cancel()
            if state.sockets.get(sid) is connection:
                del state.sockets[sid]

    routes: list[Any] = [
        Route("/prompt", post_prompt, methods=["POST"]),
        Route("/prompt", get_prompt, methods=["GET"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/history", get_history, methods=["GET"]),
        Route("/history", post_history, methods=["POST"]),
        Route("/history/{prompt_id}", get_history_item, methods=["GET"]),
        Route("/interrupt", post_interrupt, methods=["POST"]),
        Route("/object_info", get_object_info, methods=["GET"]),
        Route("/object_info/{node_class}", get_object_info_node, methods=["GET"]),
        Route("/system_stats", get_system_stats, methods=["GET"]),
        Route("/features", get_features, methods=["GET"]),
        Route("/embeddings", get_embeddings, methods=["GET"]),
        Route("/models", get_models, methods=["GET"]),
        Route("/view", get_view, methods=["GET"]),
        Route("/upload/image", post_upload_image, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    app = Starlette(routes=[*routes, Mount("/api", routes=routes)])
    return _Gate(app, state, auth)


def _client_message(state: ComfyState, connection: Connection, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        data = message.get("data") or {}
        connection.supports_preview_metadata = bool(data.get("supports_preview_metadata"))
        connection.put(json.dumps({"type": "feature_flags", "data": state.features}))


async def _json_or_empty(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async for piece in _pieces(path.read_bytes()):
        yield piece


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


async def _trickle(path: Path, size: int, every: float) -> AsyncIterator[bytes]:
    """A file `size` bytes at a time, one piece every `every` seconds (a wedged proxy)."""
    data = path.read_bytes()
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(every)


async def _cut_short(path: Path, sent: int) -> AsyncIterator[bytes]:
    """`sent` bytes of a file announced whole, then the connection drops (a server killed
    in the middle of a download)."""
    yield path.read_bytes()[:sent]
    raise ConnectionResetError("the ComfyUI test server cut the download")


class _Gate:
    """What sits in front of ComfyUI in production: an auth check (a reverse proxy), and
    injected 503s."""

    def __init__(self, app: ASGIApp, state: ComfyState, auth: tuple[str, str] | None) -> None:
        self.app = app
        self.state = state
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.auth is not None:
            name, expected = self.auth
            headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
            if headers.get(name.lower()) != expected.encode("latin-1"):
                await self._refuse(scope, receive, send, 401, "401: Unauthorized")
                return
        if scope["type"] == "http" and self.state.faults.fail_http_requests > 0:
            self.state.faults.fail_http_requests -= 1
            await self._refuse(scope, receive, send, 503, "503: Service Unavailable")
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await PlainTextResponse(text, status_code=status)(scope, receive, send)
