"""`anime comfyui add | list | remove`: the studio's ComfyUI servers, as Prefect blocks.

A server is saved where every later render, worker and `anime server` reads it: the Prefect
server of PREFECT_API_URL, or without one the PostgreSQL database `anime server` uses (never
Prefect's SQLite under PREFECT_HOME, which nothing else reads). Its slots become its Prefect
global concurrency limit at once, so the first render finds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import typer
from pydantic import SecretStr, ValidationError

from anime.cli.app import UserError, app, clear_errors
from anime.cli.render import prefect_on_postgres

comfyui_app = typer.Typer(help="The studio's ComfyUI servers.", no_args_is_help=True)
app.add_typer(comfyui_app, name="comfyui")


def _where() -> str:
    """Where blocks go, for people: the Prefect server, or the local PostgreSQL database."""
    from prefect.settings import PREFECT_API_URL

    local = prefect_on_postgres()
    return PREFECT_API_URL.value() or local or "Prefect's database"


def _field_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: "
        + str(e["msg"]).removeprefix("Value error, ")
        for e in exc.errors()
    )


@comfyui_app.command("add")
@clear_errors
def add(
    name: str = typer.Argument(..., help="block name, e.g. local or gpu-1"),
    url: str = typer.Argument(..., help="where ComfyUI answers, e.g. http://127.0.0.1:8188"),
    slots: int = typer.Option(2, min=1, help="prompts it holds at once, running or queued"),
    token_env: str | None = typer.Option(
        None, help="environment variable holding the token of the proxy in front of it"
    ),
) -> None:
    """Save a ComfyUI server (or update it) and create its slots' concurrency limit."""
    from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits, saved_servers

    token: SecretStr | None = None
    if token_env:
        value = os.environ.get(token_env, "")
        if not value:
            raise UserError(f"--token-env {token_env}: that environment variable is not set")
        token = SecretStr(value)
    try:
        server = ComfyUIServer(base_url=url, slots=slots, auth_token=token)
    except ValidationError as exc:
        raise UserError(f"{name}: {_field_errors(exc)}") from None
    where = _where()

    async def save() -> dict[str, int]:
        others = [s for n, s in await saved_servers() if n != name]
        # Every block on this machine shares its limit: their slots must agree.
        limits = await ensure_concurrency_limits([*others, server])
        await server.save(name, overwrite=True)
        report = await server.get_client().health()
        if not report.ok:
            typer.echo(f"  warning: {server.base_url} does not answer now: {report.error}")
        return limits

    try:
        asyncio.run(save())
    except ValueError as exc:  # two blocks for one server with different slots
        raise UserError(str(exc)) from None
    typer.echo(
        f"ComfyUI server {name!r} = {server.base_url}, {slots} slot(s) "
        f"(concurrency limit {server.concurrency_limit}), saved in {where}"
    )
    typer.echo(f"  render on it: anime render PROJECT EPISODE --server {name}")


@comfyui_app.command("list")
@clear_errors
def list_servers() -> None:
    """Every saved server: reachable, ComfyUI version, queue length, slots, devices."""
    from blocks.comfyui import saved_servers

    where = _where()

    async def survey() -> list[tuple[str, Any, Any, Any]]:
        servers = await saved_servers()

        async def one(name: str, server: Any) -> tuple[str, Any, Any, Any]:
            client = server.get_client()
            report = await client.health()
            stats = await client.system_stats() if report.ok else None
            return name, server, report, stats

        return list(await asyncio.gather(*(one(n, s) for n, s in servers)))

    rows = asyncio.run(survey())
    if not rows:
        typer.echo(f"no ComfyUI servers saved in {where}: `anime comfyui add NAME URL`")
        return
    for name, server, report, stats in rows:
        if report.ok:
            state = f"up, ComfyUI {report.comfyui_version or '?'}, queue {report.queue_remaining}"
        else:
            state = f"UNREACHABLE ({report.error})"
        typer.echo(f"{name}: {server.base_url}  {server.slots} slot(s)  {state}")
        for device in (stats.devices if stats else []):
            typer.echo(f"  device {_device(device)}")


def _device(device: dict[str, Any]) -> str:
    total = device.get("vram_total")
    memory = f", {total / 1024**3:.1f} GiB" if isinstance(total, int | float) and total else ""
    return f"{device.get('name', '?')} ({device.get('type', '?')}{memory})"


@comfyui_app.command("remove")
@clear_errors
def remove(name: str = typer.Argument(..., help="block name")) -> None:
    """Forget a server; its concurrency limit goes too unless another block shares it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from blocks.comfyui import find_server, saved_servers
    from blocks.comfyui.server import BLOCK_TYPE

    _where()

    async def forget() -> str:
        server = await find_server(name)  # an unknown name: one error naming the saved ones
        limit = server.concurrency_limit
        async with get_client() as client:
            document = await client.read_block_document_by_name(name, BLOCK_TYPE)
            await client.delete_block_document(document.id)
            if any(s.concurrency_limit == limit for _, s in await saved_servers()):
                return f"ComfyUI server {name!r} removed (its limit {limit} is shared: kept)"
            with contextlib.suppress(ObjectNotFound):  # never created: nothing to delete
                await client.delete_global_concurrency_limit_by_name(limit)
        return f"ComfyUI server {name!r} removed, with its concurrency limit {limit}"

    if name.lower().startswith(("http://", "https://")):
        raise UserError(f"{name!r}: give the block's name (`anime comfyui list` shows them)")
    typer.echo(asyncio.run(forget()))


@comfyui_app.command("check")
@clear_errors
def check(
    name: str = typer.Argument(..., help="block name or URL"),
    template: list[str] = typer.Option(
        [], "--template", "-t", help="template to check (repeat; default: every template)"
    ),
) -> None:
    """What the server lacks to render each template: node types and model files, as a
    render would find them (the same check routes cuts between servers)."""
    from blocks.comfyui import find_server
    from tasks.rendering.comfyui import server_check
    from workflows import UnknownTemplateError, list_templates, load_template

    for wanted in template:
        try:
            load_template(wanted)
        except UnknownTemplateError as exc:
            raise UserError(f"--template: {exc}") from None
    _where()

    async def survey():
        server = await find_server(name)
        report = await server.get_client().health()
        if not report.ok:
            raise UserError(f"{name} ({server.base_url}) does not answer: {report.error}")
        names = template or list_templates()
        return server, [(t, await server_check(server, t)) for t in names]

    server, results = asyncio.run(survey())
    for wanted, problems in results:
        if not problems:
            typer.echo(f"{wanted}: can render on {name} ({server.base_url})")
            continue
        typer.echo(f"{wanted}: CANNOT render on {name} ({server.base_url}):")
        for problem in problems:
            typer.echo(f"  - {problem}")
    if any(problems for _, problems in results):
        raise typer.Exit(1)
