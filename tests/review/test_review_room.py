"""The review room in a real headless browser: the reel plays, its markers jump to cards, and
the keyboard path (j/k, a, r + comment + Enter) stores decisions in the database."""

from __future__ import annotations

import re

import pytest
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from anime.api.app import create_app
from db.engine import session_scope
from db.models import Job, JobStatus, ReviewDecision
from tasks.reel.export import export_reel
from tests.review.conftest import api
from tests.review.test_review_page import _chromium

pytestmark = pytest.mark.asyncio(loop_scope="session")

# A same-origin probe frames the page and presses keys in it, as a person would, then writes
# what it saw. The page is not changed for the test.
PROBE = """<!doctype html><html><body><iframe id=f width=1280 height=900 src="{src}"></iframe>
<pre id=result>waiting</pre><script>
const f = document.getElementById('f');
const wait = (ms) => new Promise(r => setTimeout(r, ms));
async function until(test) {{
  for (let i = 0; i < 150; i++) {{ if (test()) return true; await wait(100); }} return false;
}}
f.onload = async () => {{
  const w = f.contentWindow, d = f.contentDocument, log = [];
  const key = (k) => (d.activeElement || d.body).dispatchEvent(
    new w.KeyboardEvent('keydown', {{key: k, bubbles: true, cancelable: true}}));
  const decisions = () => +(d.body.dataset.decisions || 0);
  const reel = d.getElementById('reel');
  await until(() => reel.readyState >= 1);
  log.push('reel ' + reel.readyState + ' ' + reel.duration.toFixed(3));
  log.push('markers ' + d.querySelectorAll('.marker').length);
  d.getElementById('reviewer').value = 'kim';
  key('j'); log.push('current ' + d.body.dataset.current);
  const clip = d.querySelector('article.current video.clip');
  await until(() => clip.readyState >= 1);
  const before = clip.currentTime; key('ArrowRight');
  log.push('step ' + (clip.currentTime - before).toFixed(3));
  key('j'); key('r');
  log.push('focus ' + d.activeElement.className);
  d.activeElement.value = 'the light is wrong';
  key('Enter'); await until(() => decisions() === 1);
  key('j'); key('k'); key('j'); log.push('current ' + d.body.dataset.current);
  key('a'); await until(() => decisions() === 2);
  log.push('badges ' + [...d.querySelectorAll('.badge')].map(b => b.textContent).join(','));
  d.querySelector('.marker[data-cut="' + d.querySelector('article.cut').dataset.cut + '"]')
    .click();
  log.push('marker ' + d.body.dataset.current + ' ' + reel.currentTime.toFixed(3));
  const status = d.getElementById('filter-status');
  status.value = 'needs_review'; status.dispatchEvent(new w.Event('change'));
  log.push('shown ' + d.getElementById('shown').textContent);
  document.getElementById('result').textContent = log.join('\\n');
}};
</script></body></html>"""


async def test_keyboard_review_in_a_browser_stores_decisions(reel_episode, live_api, tmp_path):
    summary = export_reel(reel_episode["episode_id"])
    app = create_app()
    page = f"/review/episodes/{reel_episode['episode_id']}"

    @app.get("/probe", response_class=HTMLResponse)
    async def probe() -> str:
        return PROBE.format(src=page)

    live = live_api(app)
    dom = _chromium(f"{live.url}/probe", tmp_path / "chromium-profile")
    result = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)
    seen = dict(line.split(" ", 1) for line in result.strip().splitlines())
    assert "reel" in seen, result
    ready, duration = seen["reel"].split()
    assert int(ready) >= 1 and float(duration) == pytest.approx(summary.duration_seconds, abs=0.1)
    assert seen["markers"] == "5"
    cuts = reel_episode["cuts"]
    assert float(seen["step"]) == pytest.approx(1 / 8, abs=0.01)  # one frame of the 8 fps reel
    assert seen["focus"] == "comment"
    assert seen["current"] == str(cuts[2])  # j j r ... j k j: the third cut
    assert seen["badges"].split(",")[1:3] == ["rejected", "approved"]
    assert seen["marker"] == f"{cuts[0]} 0.000"
    assert seen["shown"] == "0"  # the one flagged cut was approved

    with session_scope() as s:
        stored = s.scalars(select(ReviewDecision).order_by(ReviewDecision.id)).all()
        assert [(d.cut_id, d.outcome.value, d.reviewer, d.source) for d in stored] == [
            (cuts[1], "rejected", "kim", "page"),
            (cuts[2], "approved", "kim", "page"),
        ]
        assert stored[0].comment == "the light is wrong"
        assert s.get(Job, reel_episode["jobs"][2]).status is JobStatus.PASSED


async def test_page_shows_the_reel_with_a_marker_per_cut(reel_episode):
    episode = reel_episode["episode_id"]
    async with api() as client:
        before = (await client.get(f"/review/episodes/{episode}")).text
        assert "No reel yet" in before and '<video id="reel"' not in before
        summary = export_reel(episode)
        html = (await client.get(f"/review/episodes/{episode}")).text
    assert f'src="/api/anime/reels/{summary.reel_id}/file"' in html
    assert html.count('class="marker ') == 5 and 'class="marker attempt"' in html
    assert html.count('<video class="clip"') == 5
    # The third cut's clip is its part of the reel: from 2.0 s (16 frames at 8 fps) to 2.75 s.
    assert f"/api/anime/reels/{summary.reel_id}/file#t=2.0000,2.7500" in html
    assert 'data-scene="2"' in html and 'id="filter-character"' in html
