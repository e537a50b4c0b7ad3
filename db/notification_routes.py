"""Notification routes as a project's settings hold them, checked without Prefect.

The production file's ``project.settings.notifications`` is validated at import with this
module (db/ cannot load Prefect); blocks/notifications.py loads the blocks routes name.

YAML 1.1 reads an unquoted ``on:`` key as the boolean ``true`` (and JSON then stores it as
``"true"``): the README's own spelling ``{block: ..., on: [...]}`` must mean ``on``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NotificationEvent = Literal["gate_open", "gate_closed", "needs_review"]
EVENTS: tuple[str, ...] = get_args(NotificationEvent)
SETTINGS_KEY = "notifications"
_ON_AS_READ = (True, "true", "True")  # `on:` after YAML 1.1 and after a JSON round trip


class NotificationRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: str = Field(description="notification block as '<block type slug>/<block name>'")
    on: list[NotificationEvent] = Field(default_factory=lambda: list(EVENTS))

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for key in _ON_AS_READ:
            if key in data:
                if "on" in data:
                    raise ValueError("'on' is given twice")
                data["on"] = data.pop(key)
        return data

    @field_validator("on", mode="before")
    @classmethod
    def _one_event(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("block")
    @classmethod
    def _slug_and_name(cls, value: str) -> str:
        slug, _, name = value.strip().partition("/")
        if not slug or not name or "/" in name:
            raise ValueError(
                f"{value!r} must name a notification block as '<block type slug>/<block name>', "
                "e.g. 'custom-webhook/studio-alerts'"
            )
        return f"{slug}/{name}"

    def wants(self, event: str) -> bool:
        return event in self.on

    def stored(self) -> str | dict[str, Any]:
        """The canonical settings entry: a bare name for every event, else block and on."""
        if list(self.on) == list(EVENTS):
            return self.block
        return {"block": self.block, "on": list(self.on)}


def _problem(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown field (a route has block and on: {', '.join(EVENTS)})"
        elif err["type"] == "literal_error":
            message = f"unknown event {err['input']!r} (events: {', '.join(EVENTS)})"
        out.append((where, message))
    return out


def check_routes(
    settings: Mapping[str, Any] | None,
) -> tuple[list[NotificationRoute], list[tuple[str, str]]]:
    """The valid routes of a project's settings, and (path, problem) for each bad one.

    A bad route never hides the good ones: each is checked on its own.
    """
    raw = (settings or {}).get(SETTINGS_KEY) or []
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        return [], [(f"settings.{SETTINGS_KEY}", "must be a list of notification routes")]
    routes: list[NotificationRoute] = []
    problems: list[tuple[str, str]] = []
    for i, entry in enumerate(raw):
        data = {"block": entry} if isinstance(entry, str) else entry
        try:
            routes.append(NotificationRoute.model_validate(data))
        except ValidationError as exc:
            for where, message in _problem(exc):
                path = f"settings.{SETTINGS_KEY}[{i}]" + (f".{where}" if where else "")
                problems.append((path, message))
    return routes, problems


def parse_routes(settings: Mapping[str, Any] | None) -> tuple[list[NotificationRoute], list[str]]:
    """Like check_routes, with each problem as one line to log or show."""
    routes, problems = check_routes(settings)
    return routes, [f"{where}: {message}" for where, message in problems]


def normalized_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Settings with their routes in canonical form, or (unchanged, problems by path)."""
    if SETTINGS_KEY not in settings:
        return settings, []
    routes, problems = check_routes(settings)
    if problems:
        return settings, problems
    return {**settings, SETTINGS_KEY: [route.stored() for route in routes]}, []


__all__ = [
    "EVENTS",
    "SETTINGS_KEY",
    "NotificationEvent",
    "NotificationRoute",
    "check_routes",
    "normalized_settings",
    "parse_routes",
]
