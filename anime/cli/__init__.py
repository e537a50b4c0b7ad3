"""`anime`: what people do by hand. Each concern registers its own commands."""

from __future__ import annotations

from anime.cli import comfyui as _comfyui  # noqa: F401  (comfyui add / list / remove)
from anime.cli import db as _db  # noqa: F401  (registers `anime db ...`)
from anime.cli import episode as _episode  # noqa: F401  (episode export)
from anime.cli import identity as _identity  # noqa: F401  (calibrate)
from anime.cli import models as _models  # noqa: F401  (models status / fetch / check)
from anime.cli import ops as _ops  # noqa: F401  (server, serve, api, deploy, reproduce)
from anime.cli import production as _production  # noqa: F401  (import / export / status / demo)
from anime.cli import render as _render  # noqa: F401  (render)
from anime.cli import review as _review  # noqa: F401  (review list / approve / reject)
from anime.cli import story as _story  # noqa: F401  (registers `anime story ...`)
from anime.cli import workflow as _workflow  # noqa: F401  (workflow import / list / check)
from anime.cli.app import app

__all__ = ["app"]
