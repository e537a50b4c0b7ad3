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
from typing import Any, Literal, get_args

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NotificationEvent = Literal["gate_open", "gate_closed", "needs_review"]
EVENTS: tuple[str, ...] = get_args(NotificationEvent)
SETTINGS_KEY = "notifications"


class NotificationRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: str = Field(description="notification block as '<block type slug>/<block name>'")
    on: list[NotificationEvent] = Field(default_factory=lambda: list(EVENTS))

    @field_validator("block")
    @classmethod
    def _slug_and_name(cls, value: str) -> str:
        slug, _, name = value.strip().partition("/")
        if not slug or not name:
            raise ValueError(
                f"{value!r} must name a notification block as '<block type slug>/<block name>', "
                "e.g. 'custom-webhook/studio-alerts'"
            )
        return f"{slug}/{name}"

    def wants(self, event: str) -> bool:
        return event in self.on


class ProjectNotifications(BaseModel):
    routes: list[NotificationRoute] = Field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ProjectNotifications:
        """The routes of a project's settings; ValueError naming the bad entry."""
        raw = (settings or {}).get(SETTINGS_KEY) or []
        if isinstance(raw, str | Mapping):
            raw = [raw]
        if not isinstance(raw, list):
            raise ValueError(f"settings.{SETTINGS_KEY} must be a list of notification routes")
        routes = []
        for i, entry in enumerate(raw):
            data = {"block": entry} if isinstance(entry, str) else entry
            try:
                routes.append(NotificationRoute.model_validate(data))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: "
                    f"{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()
                )
                raise ValueError(f"settings.{SETTINGS_KEY}[{i}]: {problems}") from None
        return cls(routes=routes)

    def routes_for(self, event: str) -> list[NotificationRoute]:
        return [route for route in self.routes if route.wants(event)]


async def load_notifier(block: str) -> NotificationBlock:
    """The saved notification block a route names (any of Prefect's notification blocks)."""
    loaded = await Block.aload(block)
    if not isinstance(loaded, NotificationBlock):
        raise TypeError(f"block {block!r} is a {type(loaded).__name__}, not a notification block")
    return loaded
