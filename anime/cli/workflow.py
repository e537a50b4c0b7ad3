"""`anime workflow`: the studio's own ComfyUI workflows as templates (import, list, check)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from anime.cli.app import UserError, app, clear_errors

workflow_app = typer.Typer(help="Import, list and check ComfyUI workflow templates.")
app.add_typer(workflow_app, name="workflow")

WORKFLOW_SUFFIXES = (".json", ".png", ".webp", ".mp4", ".webm", ".mkv", ".mov")


def fetch_object_info(server: str) -> dict[str, Any]:
    """``GET /object_info`` of a server given by URL or by ComfyUIServer block name."""
    import httpx

    url, headers = server.rstrip("/"), {}
    if not url.startswith(("http://", "https://")):
        url, headers = block_endpoint(server)
    try:
        answer = httpx.get(f"{url}/object_info", headers=headers, timeout=60)
        answer.raise_for_status()
        return answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UserError(f"cannot read {url}/object_info: {exc}") from None


def block_endpoint(name: str) -> tuple[str, dict[str, str]]:
    """Base URL and auth header of the ComfyUIServer block ``name`` (the token stays secret:
    it goes into the request header only)."""
    from blocks.comfyui import ComfyUIServer

    try:
        block = ComfyUIServer.load(name)
    except ValueError as exc:
        raise UserError(
            f"--server {name!r}: neither an http(s) URL nor a ComfyUIServer block ({exc})"
        ) from None
    headers: dict[str, str] = {}
    if block.auth_token is not None:
        token = block.auth_token.get_secret_value()
        headers[block.auth_header] = f"{block.auth_scheme} {token}".strip()
    return block.base_url.rstrip("/"), headers


def load_catalogue(server: str | None, object_info: Path | None):
    from workflows import Catalogue, load_object_info

    if object_info is not None:
        try:
            return Catalogue(load_object_info(object_info))
        except (OSError, ValueError) as exc:
            raise UserError(f"--object-info {object_info}: {exc}") from None
    server = server or os.environ.get("COMFYUI_URL")
    return Catalogue(fetch_object_info(server)) if server else None


def expand(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in WORKFLOW_SUFFIXES
            )
        elif path.exists():
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return found


@workflow_app.command("import")
@clear_errors
def import_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Workflow JSON (UI or API), PNG/WebP/clip with an embedded workflow, or a folder."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Template name (one file only).")] = None,
    phase: Annotated[
        str | None, typer.Option(help="concept|generation|animation|quality|any")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="image|animation")] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="ComfyUI URL or ComfyUIServer block name whose /object_info names editor "
            "widgets (default: $COMFYUI_URL)."
        ),
    ] = None,
    object_info: Annotated[
        Path | None, typer.Option(help="A saved /object_info JSON instead of --server.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every fixed input.")
    ] = False,
) -> None:
    """Import workflows into the studio's template folder (never the installed package)."""
    from workflows.errors import WorkflowError
    from workflows.importing import import_workflow
    from workflows.studio import studio_templates_dir

    if kind is not None and kind not in ("image", "animation"):
        raise typer.BadParameter("expected image or animation", param_hint="--kind")
    if phase is not None and phase not in ("concept", "generation", "animation", "quality", "any"):
        raise typer.BadParameter(
            "expected concept, generation, animation, quality or any", param_hint="--phase"
        )
    files = expand(paths)
    if name is not None and len(files) != 1:
        raise typer.BadParameter("--name applies to a single workflow file", param_hint="--name")
    catalogue = load_catalogue(server, object_info)
    root = studio_templates_dir()
    results, refused = [], []
    for path in files:
        try:
            results.append(
                import_workflow(path, catalogue, name=name, phase=phase, kind=kind, root=root)
            )
        except WorkflowError as exc:
            refused.append((path, str(exc)))
    for result in results:
        typer.echo(
            f"{result.status}: {result.name} v{result.version} from {result.source} "
            f"[{result.format}]" + (" (your manifest edits kept)" if result.kept_edits else "")
        )
        if len(files) == 1:
            typer.echo("  bound parameters:")
            for pname, node, input_name in result.bound:
                typer.echo(f"    {pname:<18} node {node} input {input_name}")
            typer.echo(f"  outputs: {', '.join(result.output_nodes)}")
            typer.echo(f"  fixed in the graph: {len(result.fixed)} input(s)")
            for node, input_name, value in result.fixed[: None if verbose else 40]:
                typer.echo(f"    node {node} input {input_name} = {json.dumps(value)[:60]}")
            if len(result.fixed) > 40 and not verbose:
                typer.echo(f"    ... {len(result.fixed) - 40} more (--verbose lists them all)")
        for note in result.notes:
            typer.echo(f"  note: {note}")
    if len(files) > 1:
        typer.echo(f"\n{len(results)} imported, {len(refused)} refused ({root})")
        for path, why in refused:
            reason = why.removeprefix(f"{path}: ").replace("\n  - ", " | ").replace("\n", " ")
            typer.echo(f"  refused {path.name}: {reason}")
    elif results:
        typer.echo(f"stored in {root}")
    if refused and len(files) == 1:
        raise UserError(refused[0][1])
    if refused and not results:
        raise typer.Exit(1)


@workflow_app.command("list")
@clear_errors
def list_command() -> None:
    """Templates the renderer can use: the studio's imported ones and the shipped ones."""
    from workflows import list_templates, load_template
    from workflows.errors import WorkflowError
    from workflows.templating import template_origin

    typer.echo(f"{'name':<28} {'origin':<8} {'version':>7}  {'phase':<11} {'kind':<10}")
    for name in list_templates():
        origin = template_origin(name)
        try:
            manifest = load_template(name).manifest
            typer.echo(
                f"{name:<28} {origin:<8} {manifest.version:>7}  {manifest.phase:<11} "
                f"{manifest.kind:<10}"
            )
        except WorkflowError as exc:
            typer.echo(f"{name:<28} {origin:<8} {'?':>7}  broken: {str(exc).splitlines()[0]}")


@workflow_app.command("check")
@clear_errors
def check_command(
    name: Annotated[str, typer.Argument(help="Template name (see `anime workflow list`).")],
    server: Annotated[
        str | None, typer.Option(help="ComfyUI URL or ComfyUIServer block (default: $COMFYUI_URL).")
    ] = None,
) -> None:
    """Check a template against a live server: node types, model files, values."""
    from workflows import load_template
    from workflows.errors import WorkflowError
    from workflows.server_check import check_against

    server = server or os.environ.get("COMFYUI_URL")
    if not server:
        raise typer.BadParameter("give --server URL (or set COMFYUI_URL)", param_hint="--server")
    try:
        template = load_template(name)
    except WorkflowError as exc:
        raise UserError(str(exc)) from None
    findings = check_against(template.graph, fetch_object_info(server), name)
    if not findings:
        typer.echo(f"{name} v{template.version}: the server at {server} has everything it needs")
        return
    typer.echo(f"{name} v{template.version}: {len(findings)} problem(s) on {server}")
    for _problem, line in findings:
        typer.echo(f"  - {line}")
    raise typer.Exit(1)
