"""`anime`: what people do by hand. Each concern registers its own commands, and its module is
imported when one of them runs (anime/cli/app.py: COMMANDS)."""

from __future__ import annotations

from anime.cli.app import app

__all__ = ["app"]
