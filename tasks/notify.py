"""Notifications on quality decisions: every phase-gate decision and every subject flagged for
review goes to the notification blocks the project lists (blocks/notifications.py).

A notification that cannot be sent is logged and forgotten: it never fails a render.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any

import anyio
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks.notifications import NotificationEvent, ProjectNotifications, load_notifier
from db import api_queries
from tasks.production import in_session

SEND_TIMEOUT_S = 20.0


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("anime.notify")


class Notice(BaseModel):
    """One thing people should hear about."""

    event: NotificationEvent
    project: str
    subject: str
    explanation: str
    flow_run_id: str | None = None
    links: dict[str, str] = Field(default_factory=dict)

    def key(self) -> str:
        """What makes two notices the same decision: not the run that reached it again."""
        text = "\n".join([self.event, self.project, self.subject, self.explanation.strip()])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def body(self) -> str:
        # The subject goes separately (a title in Slack, e-mail, ...): the body does not repeat
        # it, so a template like "{{subject}}\n{{body}}" shows it once.
        lines = [self.explanation.strip()]
        if self.links:
            lines += ["", *(f"{name}: {url}" for name, url in self.links.items())]
        return "\n".join(lines).strip()


def run_links(flow_run_id: str | None, job_id: int | None = None) -> dict[str, str]:
    """Where to look: the run in the Prefect UI, the job's quality in the domain API."""
    from prefect.settings import PREFECT_UI_URL

    links: dict[str, str] = {}
    ui = PREFECT_UI_URL.value()
    if ui and flow_run_id:
        links["run"] = f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"
    api = os.environ.get("ANIME_API_URL")
    if api and job_id is not None:
        links["quality"] = f"{api.rstrip('/')}/api/anime/quality/{job_id}"
    return links


def gate_notice(project: str, label: str, decision: Any, flow_run_id: str | None) -> Notice:
    """A PhaseGateDecision (tasks.scoring.gates) as a notice."""
    value = getattr(decision.decision, "value", decision.decision)
    rate = "n/a" if decision.pass_rate is None else f"{decision.pass_rate:.0%}"
    return Notice(
        event="gate_open" if value == "open" else "gate_closed",
        project=project,
        subject=(
            f"[{project}] {label}: {decision.phase.value} gate {value.upper()} "
            f"({rate} passed, {decision.required_rate:.0%} required)"
        ),
        explanation=decision.explanation,
        flow_run_id=flow_run_id,
        links=run_links(flow_run_id),
    )


def review_notice(
    project: str, label: str, phase: str, note: str, job_id: int, flow_run_id: str | None
) -> Notice:
    return Notice(
        event="needs_review",
        project=project,
        subject=f"[{project}] {label}: {phase} needs review (job {job_id})",
        explanation=note,
        flow_run_id=flow_run_id,
        links=run_links(flow_run_id, job_id),
    )


async def _send_one(block: str, notice: Notice) -> None:
    notifier = await load_notifier(block)
    with anyio.fail_after(SEND_TIMEOUT_S):
        if hasattr(notifier, "raise_on_failure"):
            # Apprise-based blocks swallow failures unless asked; we want to log them.
            with notifier.raise_on_failure():
                await _deliver(notifier, notice)
        else:
            await _deliver(notifier, notice)


async def _deliver(notifier: Any, notice: Notice) -> None:
    if hasattr(notifier, "anotify"):
        await notifier.anotify(notice.body(), notice.subject)
    else:
        await anyio.to_thread.run_sync(notifier.notify, notice.body(), notice.subject)


_URL = re.compile(r"\w+://\S+")


def describe_failure(exc: BaseException) -> str:
    """What went wrong, without the URL: webhook URLs often carry the secret token."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return f"the receiver answered HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {SEND_TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {_URL.sub('<url>', str(exc))}"


async def send_notice(notice: Notice, routes: ProjectNotifications) -> list[str]:
    """Send to every route that wants this event; returns the blocks that took it. Failures
    are logged (block name and error, never the block's secrets) and skipped."""
    sent = []
    for route in routes.routes_for(notice.event):
        try:
            await _send_one(route.block, notice)
        except Exception as exc:
            _logger().warning(
                "notification to %s failed (%s); the run goes on",
                route.block,
                describe_failure(exc),
            )
            continue
        sent.append(route.block)
    return sent


async def notify_project(project_id: int, build: Any) -> list[str]:
    """Look up the project's routes, build the notice from its slug, send it unless it was
    sent before (a rerun reaching the same decision announces nothing). Never raises."""
    try:
        slug, settings = await in_session(api_queries.project_settings, project_id)
        routes = ProjectNotifications.usable(settings)
        for problem in routes.problems:
            _logger().warning("notification route ignored (fix the project settings): %s", problem)
        if not routes.routes:
            return []
        notice: Notice = build(slug)
        key = notice.key()
        if await in_session(api_queries.already_announced, project_id, key):
            _logger().info("already announced, not sent again: %s", notice.subject)
            return []
        sent = await send_notice(notice, routes)
        if sent:
            await in_session(
                api_queries.record_announcement, project_id, key, notice.event, notice.subject
            )
        return sent
    except Exception as exc:
        _logger().warning("notifications skipped: %s", describe_failure(exc))
        return []


@task(name="notify-phase-gate", cache_policy=NO_CACHE)
async def notify_phase_gate(project_id: int, label: str, decision: Any) -> list[str]:
    """Tell the project's routes about a phase-gate decision (open or closed)."""
    run_id = flow_run.get_id()
    return await notify_project(project_id, lambda slug: gate_notice(slug, label, decision, run_id))


@task(name="notify-review", cache_policy=NO_CACHE)
async def notify_review(
    project_id: int, label: str, phase: str, note: str, job_id: int
) -> list[str]:
    """Tell the project's routes that a subject waits for a person."""
    run_id = flow_run.get_id()
    return await notify_project(
        project_id, lambda slug: review_notice(slug, label, phase, note, job_id, run_id)
    )
