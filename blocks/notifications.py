"""Who hears about quality decisions, per project.

A project lists its notification routes in its settings (the production file's
`project.settings.notifications`, stored with the project). Each route names a Prefect
notification block saved in the Prefect UI or API, as `<block type slug>/<block name>`
(`custom-webhook/studio-alerts`, `slack-webhook/review-channel`, ...), and optionally the
events it wants:

```yaml
project:
  slug: moonlit-courier
  settings:
    notifications:
      - custom-webhook/studio-alerts                  # every event
      - {block: slack-webhook/leads, on: [gate_closed, needs_review]}
```

Events: `gate_open` and `gate_closed` (a phase-gate decision), `needs_review` (a cut or a
character sheet flagged for a person after its attempt budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from pydantic import BaseModel, Field

from db.notification_routes import (
    EVENTS,
    SETTINGS_KEY,
    NotificationEvent,
    NotificationRoute,
    parse_routes,
)


class ProjectNotifications(BaseModel):
    routes: list[NotificationRoute] = Field(default_factory=list)
    # One line per route that could not be read: logged, never a reason to skip the others.
    problems: list[str] = Field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ProjectNotifications:
        """The routes of a project's settings; ValueError naming every bad entry."""
        routes, problems = parse_routes(settings)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(routes=routes)

    @classmethod
    def usable(cls, settings: Mapping[str, Any] | None) -> ProjectNotifications:
        """The routes that can be used, with the bad ones listed in ``problems``."""
        routes, problems = parse_routes(settings)
        return cls(routes=routes, problems=problems)

    def routes_for(self, event: str) -> list[NotificationRoute]:
        return [route for route in self.routes if route.wants(event)]


async def load_notifier(block: str) -> NotificationBlock:
    """The saved notification block a route names (any of Prefect's notification blocks)."""
    loaded = await Block.aload(block)
    if not isinstance(loaded, NotificationBlock):
        raise TypeError(f"block {block!r} is a {type(loaded).__name__}, not a notification block")
    return loaded


__all__ = [
    "EVENTS",
    "SETTINGS_KEY",
    "NotificationEvent",
    "NotificationRoute",
    "ProjectNotifications",
    "load_notifier",
]
