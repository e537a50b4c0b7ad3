"""Yield per episode, phase, scene and character: from the stored attempts, their timings and
people's decisions; in the domain API, `anime status --detail` and the quality artifact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from anime.cli import app
from db import review as db_review
from db.engine import session_scope
from db.jobs import now
from db.models import Job, Phase, ReviewOutcome
from db.yields import episode_yield
from tests.review.conftest import api

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ten_seconds_each() -> None:
    with session_scope() as s:
        for job in s.scalars(select(Job)):
            job.started_at = now()
            job.finished_at = job.started_at + timedelta(seconds=10)


async def test_yield_counts_first_passes_attempts_render_time_and_people(reel_episode):
    _ten_seconds_each()
    episode = reel_episode["episode_id"]
    with session_scope() as s:
        before = episode_yield(s, episode)
    # Four items: C01 animation, C02 keyframe, S02C01 keyframe (flagged), S02C03 animation.
    assert (before.episode.items, before.episode.approved, before.episode.first_pass) == (4, 3, 3)
    assert before.episode.attempts_per_approved == pytest.approx(4 / 3)
    assert before.episode.render_seconds_per_approved_second == pytest.approx(40 / 3.0)
    assert before.episode.human_share == 0.0 and before.episode.could_not_judge_share == 0.0
    assert before.by_scene[2].first_pass_yield == 0.5
    assert before.by_phase["animation"].items == 2

    with session_scope() as s:
        db_review.decide(
            s, cut_id=reel_episode["cuts"][2], phase=Phase.GENERATION,
            outcome=ReviewOutcome.APPROVED, reviewer="dee",
        )  # fmt: skip
        after = episode_yield(s, episode)
    assert (after.episode.approved, after.episode.first_pass) == (4, 3)  # a person, not a pass
    assert after.episode.human_share == pytest.approx(0.25)
    assert after.episode.render_seconds_per_approved_second == pytest.approx(40 / 3.75)
    assert after.by_character["mio"].items == 4

    async with api() as client:
        served = (await client.get(f"/api/anime/episodes/{episode}/yield")).json()
        assert served["episode"]["first_pass_yield"] == 0.75
        assert served["by_scene"]["2"]["human_share"] == 0.5
        missing = await client.get("/api/anime/episodes/4242/yield")
        assert missing.status_code == 404

    shown = CliRunner().invoke(app, ["status", "reel-short", "--detail"])
    assert shown.exit_code == 0, shown.output
    assert "yield: 4/4 approved, first pass 75%" in shown.output
    assert "character mio: 4/4 approved" in shown.output and "people decided 25%" in shown.output
    plain = CliRunner().invoke(app, ["status", "reel-short"])
    assert "yield:" not in plain.output
