"""Notifications through Prefect notification blocks, to a webhook receiver on loopback."""

from __future__ import annotations

import logging

import pytest
from prefect import flow

from blocks.notifications import ProjectNotifications
from db.models import GateDecision, Phase, Verdict
from tasks.notify import Notice, notify_phase_gate, notify_review, send_notice
from tasks.scoring.gates import decide_phase_gate
from tests.ops.conftest import set_project_notifications

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _closed_gate():
    return decide_phase_gate(
        [("E01S01C01", Verdict.PASSED), ("E01S01C02", Verdict.FAILED)], Phase.GENERATION
    )


async def test_a_notice_reaches_the_webhook(webhook, webhook_block):
    notice = Notice(
        event="gate_closed",
        project="moonlit-courier",
        subject="[moonlit-courier] episode 1: generation gate CLOSED",
        explanation="Phase generation gate CLOSED: 1 of 2 counted items passed.",
        links={"run": "http://127.0.0.1:4200/runs/flow-run/abc"},
    )
    routes = ProjectNotifications.from_settings({"notifications": [webhook_block]})
    assert await send_notice(notice, routes) == [webhook_block]
    (received,) = webhook.received
    assert received["subject"] == notice.subject
    assert "1 of 2 counted items passed" in received["body"]
    assert "run: http://127.0.0.1:4200/runs/flow-run/abc" in received["body"]


async def test_failed_notifications_are_logged_without_the_url_and_never_raise(
    webhook, webhook_block, caplog
):
    webhook.status = 500
    routes = ProjectNotifications.from_settings(
        {"notifications": ["custom-webhook/no-such-block", webhook_block]}
    )
    notice = Notice(event="needs_review", project="p", subject="s", explanation="e")
    with caplog.at_level(logging.WARNING):
        assert await send_notice(notice, routes) == []
    assert len(webhook.received) == 1  # it was tried, and answered 500
    messages = [r.getMessage() for r in caplog.records if "notification to" in r.getMessage()]
    assert any("custom-webhook/no-such-block failed" in m for m in messages)
    assert any("answered HTTP 500" in m for m in messages)
    assert not any(webhook.url in m for m in messages)  # webhook URLs carry tokens


async def test_flow_notifies_gate_decisions_and_reviews_and_survives_broken_routes(
    production, prefect_harness, webhook, webhook_block
):
    set_project_notifications(
        [
            "custom-webhook/no-such-block",  # broken: logged, skipped
            {"block": webhook_block, "on": ["gate_closed", "needs_review"]},
        ]
    )
    from db.engine import session_scope
    from db.queries import get_project

    with session_scope() as s:
        project_id = get_project(s, "moonlit-courier").id

    @flow(name="notify-check")
    async def decide() -> list[list[str]]:
        gate = await notify_phase_gate(project_id, "moonlit-courier episode 1", _closed_gate())
        review = await notify_review(project_id, "E01S01C02", "generation", "flagged", 12)
        return [gate, review]

    state = await decide(return_state=True)
    assert state.is_completed()
    assert await state.result() == [[webhook_block], [webhook_block]]
    gate, review = webhook.received
    assert gate["subject"] == (
        "[moonlit-courier] moonlit-courier episode 1: generation gate CLOSED "
        "(50% passed, 80% required)"
    )
    assert "Failed (1): E01S01C02." in gate["body"]
    assert f"/runs/flow-run/{state.state_details.flow_run_id}" in gate["body"]
    assert review["subject"] == "[moonlit-courier] E01S01C02: generation needs review (job 12)"
    assert _closed_gate().decision is GateDecision.CLOSED


async def test_a_project_with_unreadable_settings_still_renders(production, prefect_harness):
    set_project_notifications(42)
    from db.engine import session_scope
    from db.queries import get_project

    with session_scope() as s:
        project_id = get_project(s, "moonlit-courier").id

    @flow(name="notify-check-bad-settings")
    async def decide() -> list[str]:
        return await notify_phase_gate(project_id, "episode 1", _closed_gate())

    state = await decide(return_state=True)
    assert state.is_completed() and await state.result() == []


def _production_with_routes(tmp_path, routes_yaml: str):
    """The example production with notification routes added as YAML text, as written."""
    import shutil

    from tests.conftest import EXAMPLE

    target = tmp_path / "moonlit"
    shutil.copytree(EXAMPLE.parent, target)
    path = target / "production.yaml"
    anchor = "    default_template: keyframe\n"
    text = path.read_text()
    assert anchor in text
    path.write_text(text.replace(anchor, anchor + "    notifications:\n" + routes_yaml + "\n"))
    return path


async def test_import_accepts_the_readmes_route_spelling_and_refuses_bad_routes(db, tmp_path):
    from db.engine import session_scope
    from db.production_file import ProductionFileError, load_production
    from db.production_io import import_production
    from db.queries import get_project

    good = _production_with_routes(
        tmp_path / "good",
        "      - custom-webhook/studio-alerts\n"
        "      - {block: slack-webhook/leads, on: [gate_closed, needs_review]}",
    )
    with session_scope() as s:
        import_production(s, load_production(good))
    with session_scope() as s:
        settings = get_project(s, "moonlit-courier").settings
    assert settings["notifications"] == [
        "custom-webhook/studio-alerts",
        {"block": "slack-webhook/leads", "on": ["gate_closed", "needs_review"]},
    ]

    bad = _production_with_routes(
        tmp_path / "bad",
        "      - {block: slack-webhook/leads, on: [gate_closed, gate_shut]}\n"
        "      - studio-alerts\n"
        "      - {block: a/b, when: [gate_open]}",
    )
    with pytest.raises(ProductionFileError) as caught:
        load_production(bad)
    problems = dict(caught.value.problems)
    assert "unknown event 'gate_shut'" in problems["project.settings.notifications[0].on.1"]
    assert "must name a notification block" in problems["project.settings.notifications[1].block"]
    assert "unknown field" in problems["project.settings.notifications[2].when"]


async def test_one_bad_route_never_silences_the_others(
    production, prefect_harness, webhook, webhook_block, caplog
):
    # As stored by an import before routes were checked: YAML's `on` read as true, then JSON.
    set_project_notifications(
        [
            {"block": "slack-webhook/leads", "true": ["gate_closed"]},
            {"block": "custom-webhook/x", "on": ["gate_shut"]},
            webhook_block,
        ]
    )
    from db.engine import session_scope
    from db.queries import get_project

    with session_scope() as s:
        project_id = get_project(s, "moonlit-courier").id

    @flow(name="notify-check-one-bad-route")
    async def decide() -> list[str]:
        return await notify_phase_gate(project_id, "episode 1", _closed_gate())

    with caplog.at_level(logging.WARNING):
        state = await decide(return_state=True)
    assert await state.result() == [webhook_block]
    assert len(webhook.received) == 1
    messages = [r.getMessage() for r in caplog.records]
    ignored = [m for m in messages if "notification route ignored" in m]
    assert len(ignored) == 1 and "notifications[1].on.0: unknown event 'gate_shut'" in ignored[0]
    # The `true` route is the README's `on` and was tried (its block does not exist).
    assert any("slack-webhook/leads failed" in m for m in messages)


async def test_the_body_does_not_repeat_the_subject():
    notice = Notice(event="gate_open", project="p", subject="[p] gate OPEN", explanation="fine")
    assert notice.subject not in notice.body() and notice.body() == "fine"


async def test_a_rerun_reaching_the_same_decision_announces_it_once(
    production, prefect_harness, webhook, webhook_block
):
    set_project_notifications([webhook_block])
    from db.engine import session_scope
    from db.queries import get_project

    with session_scope() as s:
        project_id = get_project(s, "moonlit-courier").id
    opened = decide_phase_gate([("E01S01C01", Verdict.PASSED)], Phase.GENERATION)

    @flow(name="notify-check-once")
    async def run(decision) -> list[list[str]]:
        gate = await notify_phase_gate(project_id, "episode 1", decision)
        review = await notify_review(project_id, "E01S01C02", "generation", "flagged", 12)
        return [gate, review]

    first = await run(_closed_gate())
    again = await run(_closed_gate())  # the same decisions, as a rerun of the episode reaches
    changed = await run(opened)  # the gate now opens: a new decision
    assert first == [[webhook_block], [webhook_block]]
    assert again == [[], []]
    assert changed == [[webhook_block], []]
    subjects = [r["subject"] for r in webhook.received]
    assert len(subjects) == 3 and "gate OPEN" in subjects[-1]
