"""The review page and the media behind it: thumbnails served by id, seen in a real browser."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.responses import HTMLResponse
from PIL import Image
from sqlalchemy import select

from anime.api.app import create_app
from db import jobs as db_jobs
from db.engine import session_scope
from db.models import (
    Character,
    CharacterReference,
    Cut,
    JobKind,
    JobStatus,
    Phase,
    Project,
    ReviewDecision,
    SceneCasting,
    Verdict,
)
from db.renders import RenderOutput, RenderResult
from tasks.scoring.gates import MetricLine
from tests.review.conftest import api

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _picture(path: Path, size=(640, 360), frames: int = 1) -> dict:
    images = [Image.new("RGB", size, (40 * i, 120, 200)) for i in range(frames)]
    if frames == 1:
        images[0].save(path, format="PNG")
        kind, mime = "image", "image/png"
    else:
        images[0].save(path, format="WEBP", save_all=True, append_images=images[1:], lossless=True)
        kind, mime = "animation", "image/webp"
    data = path.read_bytes()
    return {
        "path": str(path),
        "kind": kind,
        "mime": mime,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "width": size[0],
        "height": size[1],
        "frames": frames,
    }


def _judged(s, cut: Cut, phase: Phase, output: dict, verdict: Verdict) -> int:
    job, _ = db_jobs.get_or_create_job(
        s,
        project_id=cut.scene.episode.project_id,
        phase=phase,
        kind=JobKind.KEYFRAME if phase is Phase.GENERATION else JobKind.ANIMATION,
        attempt=1,
        cut_id=cut.id,
        renderer="animatic",
    )
    result = RenderResult(
        renderer="animatic", params={"seed": 1}, workflow_sha256="0" * 64,
        outputs=[RenderOutput(**output)],
    )  # fmt: skip
    db_jobs.record_render(s, job.id, result)
    line = MetricLine(
        metric="aesthetic",
        value=4.0 if verdict is Verdict.FAILED else 6.0,
        threshold=5.5,
        comparator=">=",
        verdict=verdict,
    )
    db_jobs.record_judgement(s, job.id, verdict=verdict, explanation="judged", lines=[line])
    return job.id


@pytest.fixture
def reviewed_episode(small_production, tmp_path, monkeypatch) -> dict:
    """Cut 1: a flagged keyframe; cut 2: a passed keyframe and a clip; Mio cast with a
    reference picture; a description that would be markup if not escaped."""
    monkeypatch.setenv("ANIME_THUMBNAIL_DIR", str(tmp_path / "thumbs"))
    out = tmp_path / "outputs"
    out.mkdir()
    with session_scope() as s:
        cuts = s.scalars(select(Cut).order_by(Cut.number)).all()
        cuts[0].description = "<script>alert(1)</script> & rain"
        flagged = _judged(s, cuts[0], Phase.GENERATION, _picture(out / "c1.png"), Verdict.FAILED)
        db_jobs.flag_for_review(s, flagged, "flagged for review after 1 attempt(s) of 1")
        keyframe = _judged(s, cuts[1], Phase.GENERATION, _picture(out / "c2.png"), Verdict.PASSED)
        clip = _judged(
            s, cuts[1], Phase.ANIMATION, _picture(out / "c2.webp", frames=3), Verdict.PASSED
        )
        mio = s.scalar(select(Character).where(Character.slug == "mio"))
        ref_path = out / "mio-front.png"
        Image.new("RGB", (512, 512), (200, 30, 30)).save(ref_path)
        ref = CharacterReference(character_id=mio.id, path=str(ref_path), view="front")
        s.add(ref)
        s.add(SceneCasting(scene_id=cuts[0].scene_id, character_id=mio.id, role="lead"))
        s.flush()
        episode_id = cuts[0].scene.episode_id
        return {
            "episode": episode_id,
            "cuts": [c.id for c in cuts],
            "flagged": flagged,
            "keyframe": keyframe,
            "clip": clip,
            "reference": ref.id,
        }


# The page itself is not changed for the test: a same-origin probe page frames it and writes
# what the browser made of each picture (naturalWidth is 0 for a picture that did not load).
PROBE = """<!doctype html><html><body><iframe id=f width=1200 height=3000 src="{src}"></iframe>
<pre id=result>waiting</pre><script>
const f = document.getElementById('f');
f.onload = () => {{
  const imgs = [...f.contentDocument.images];
  Promise.all(imgs.map(i => i.complete ? 1 : new Promise(r => {{ i.onload = i.onerror = r; }})))
    .then(() => {{
      document.getElementById('result').textContent = imgs
        .map(i => i.className + ' ' + i.naturalWidth + ' ' + i.getAttribute('src')).join('\\n');
    }});
}};
</script></body></html>"""


def _chromium(url: str, profile: Path) -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_the_review_page_shows_real_thumbnails_in_a_browser(
    reviewed_episode, live_api, tmp_path
):
    app = create_app()
    page = f"/review/episodes/{reviewed_episode['episode']}"

    @app.get("/probe", response_class=HTMLResponse)
    async def probe() -> str:
        return PROBE.format(src=page)

    live = live_api(app)
    dom = _chromium(f"{live.url}/probe", tmp_path / "chromium-profile")
    result = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)
    pictures = [line.split(" ", 2) for line in result.strip().splitlines()]
    assert pictures, f"no pictures on the page: {result!r}"
    by_src = {src.replace("&amp;", "&"): (cls, int(width)) for cls, width, src in pictures}
    outputs = [v for v in by_src.values() if v[0] == "output"]
    assert len(outputs) == 3 and all(w == 320 for _, w in outputs)  # 640 px stored -> 320
    assert ("reference", 160) in by_src.values()  # Mio's reference beside cuts 1 and 2
    thumbs = [(path, code) for path, code in live.seen if path.endswith("/thumbnail")]
    assert len(thumbs) >= 4 and {code for _, code in thumbs} == {200}
    # The description was shown as text, not run as a script.
    assert "alert(1)" not in dom  # the probe's DOM holds the frame's URL, not its markup


async def test_page_escapes_filters_and_takes_form_decisions(reviewed_episode):
    episode, cuts = reviewed_episode["episode"], reviewed_episode["cuts"]
    async with api() as client:
        html = (await client.get(f"/review/episodes/{episode}")).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; rain" in html
        assert "<script>alert" not in html
        assert "E01S01C01" in html and "E01S01C02" in html and "needs_review" in html
        assert f"/api/anime/references/{reviewed_episode['reference']}/thumbnail" in html
        only = (await client.get(f"/review/episodes/{episode}?needs_review=1")).text
        assert "E01S01C01" in only and "E01S01C02" not in only

        posted = await client.post(
            f"/review/episodes/{episode}/cuts/{cuts[0]}",
            data={"phase": "generation", "outcome": "approved", "reviewer": "dee",
                  "comment": "<b>good</b>"},
        )  # fmt: skip
        assert posted.status_code == 303
        after = (await client.get(posted.headers["location"].split("#")[0])).text
        assert "approved</b> by dee" in after and "&lt;b&gt;good&lt;/b&gt;" in after
        bad = await client.post(
            f"/review/episodes/{episode}/cuts/{cuts[0]}", data={"outcome": "maybe"}
        )
        assert bad.status_code == 422 and "outcome" in bad.json()["error"]
    with session_scope() as s:
        (decision,) = s.scalars(select(ReviewDecision)).all()
        assert (decision.source, decision.reviewer, decision.previous_verdict) == (
            "page",
            "dee",
            Verdict.FAILED,
        )
        assert decision.overruled[0]["value"] == 4.0
        job = s.get(db_jobs.Job, reviewed_episode["flagged"])
        assert job.status is JobStatus.PASSED


async def test_media_is_served_by_id_only(reviewed_episode):
    async with api() as client:
        clip = await client.get(
            f"/api/anime/jobs/{reviewed_episode['clip']}/thumbnail", follow_redirects=True
        )
        assert clip.status_code == 200 and clip.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(clip.content)) as poster:
            assert poster.size == (320, 180)  # the clip's first frame, scaled
        with session_scope() as s:
            art = s.scalar(
                select(db_jobs.Artifact).where(db_jobs.Artifact.job_id == reviewed_episode["clip"])
            )
            art_id, stored = art.id, Path(art.uri).read_bytes()
        file = await client.get(f"/api/anime/artifacts/{art_id}/file")
        assert file.content == stored and file.headers["content-type"] == "image/webp"
        missing = await client.get("/api/anime/artifacts/999999/thumbnail")
        assert missing.status_code == 404 and "999999" in missing.json()["error"]
        sneaky = await client.get("/api/anime/artifacts/..%2F..%2Fetc%2Fpasswd/file")
        assert sneaky.status_code in (404, 422)
    with session_scope() as s:
        assert s.scalar(select(Project.slug)) == "pocket-short"
