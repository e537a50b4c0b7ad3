"""Every error as JSON with one clear message: {"error": ..., "status": ...}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from db.api_queries import Conflict
from deployments.params import ParameterError
from deployments.trigger import DeploymentMissing


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{_where(e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        return error_response(422, "; ".join(problems), problems=problems)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(LookupError)
    async def not_found(_: Request, exc: LookupError) -> JSONResponse:
        return error_response(404, exc.args[0] if exc.args else "not found")

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(ParameterError)
    async def bad_parameters(_: Request, exc: ParameterError) -> JSONResponse:
        return error_response(422, str(exc).splitlines()[0], problems=exc.problems)

    @app.exception_handler(DeploymentMissing)
    async def no_deployment(_: Request, exc: DeploymentMissing) -> JSONResponse:
        return error_response(503, str(exc))
