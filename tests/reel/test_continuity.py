"""Continuity between consecutive cuts sharing a character: measured with the scoring package's
own models (stand-ins built on disk), stored, shown between the cards, gated only when asked."""

from __future__ import annotations

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import select

from blocks.quality import QualityThresholds
from db.engine import session_scope
from db.models import ContinuityScore, Verdict
from flows.quality import quality_review
from tasks.continuity import colour_continuity, score_episode_continuity
from tests.review.conftest import api

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_colour_continuity_is_one_for_the_same_frame_and_zero_for_disjoint_colours():
    a, b = Image.new("RGB", (64, 36), (200, 20, 20)), Image.new("RGB", (64, 36), (20, 20, 200))
    assert colour_continuity(a, a).value == pytest.approx(1.0)
    assert colour_continuity(a, b).value == pytest.approx(0.0)


async def test_continuity_is_stored_and_shown_between_the_two_cuts(reel_episode, stand_in_models):
    checks = score_episode_continuity(
        reel_episode["episode_id"], stand_in_models, QualityThresholds()
    )
    # Only scene 1 has two neighbouring cuts with footage: C01 (clip) then C02 (keyframe).
    assert {c.label.split(":")[0] for c in checks} == {"E01S01C02 after E01S01C01"}
    cuts = reel_episode["cuts"]
    with session_scope() as s:
        rows = {(r.metric, r.subject): r for r in s.scalars(select(ContinuityScore))}
        assert set(rows) == {
            ("continuity_identity", "mio"), ("continuity_style", ""), ("continuity_colour", ""),
        }  # fmt: skip
        colour = rows[("continuity_colour", "")]
        assert (colour.cut_id, colour.previous_cut_id) == (cuts[1], cuts[0])
        assert (colour.job_id, colour.previous_job_id) == tuple(reel_episode["jobs"][1::-1])
        assert colour.value == pytest.approx(0.0) and colour.verdict is Verdict.FAILED
        style = rows[("continuity_style", "")]
        assert style.value is not None and -1.0 <= style.value <= 1.0 and style.threshold == 0.85
        identity = rows[("continuity_identity", "mio")]  # the stand-ins have no face model
        assert identity.verdict is Verdict.COULD_NOT_JUDGE and "face" in identity.reason.lower()

    async with api() as client:
        html = (await client.get(f"/review/episodes/{reel_episode['episode_id']}")).text
    between = html.index(f'data-after="{cuts[1]}"')
    assert html.index(f'id="cut-{cuts[0]}"') < between < html.index(f'id="cut-{cuts[1]}"')
    assert "continuity with E01S01C01" in html and "colour: 0 <span" in html


async def test_the_quality_gate_counts_continuity_only_when_asked(
    reel_episode, prefect_harness, stand_in_models
):
    await stand_in_models.save("continuity-models", overwrite=True)
    await QualityThresholds().save("continuity-off", overwrite=True)
    await QualityThresholds(gate_on_continuity=True).save("continuity-on", overwrite=True)
    off = await quality_review("reel-short", 1, "continuity-off", "continuity-models")
    on = await quality_review("reel-short", 1, "continuity-on", "continuity-models")
    assert off.total == 5 and on.total == 8  # five cuts, then three continuity lines besides
    labels = {i.label: i.verdict for i in on.items}
    assert labels["E01S01C02 after E01S01C01: continuity_colour"] is Verdict.FAILED

    # The quality phase's artifacts carry the episode's yield.
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key={"any_": ["reel-short-episode-1-quality-yield"]}),
            sort=ArtifactSort.CREATED_DESC,  # the suite's other episodes publish theirs too
            limit=5,
        )
    assert artifacts and "| **episode** | 3/4 |" in artifacts[0].data
    assert "| character mio | 3/4 |" in artifacts[0].data
