"""Review: people see the outputs and decide where the gates cannot.

GET  /review/episodes/{id}[?needs_review=1]     the review page (server-rendered HTML)
POST /review/episodes/{id}/cuts/{cut_id}         a decision from the page's form
GET  /api/anime/episodes/{id}/review             the same as JSON
POST /api/anime/cuts/{cut_id}/review             a decision as JSON
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from html import escape
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from db import review as db_review
from db.vocabulary import Phase, ReviewOutcome
from tasks.production import in_session

router = APIRouter(tags=["review"])


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Literal["generation", "animation"] = "generation"
    outcome: Literal["approved", "rejected"]
    reviewer: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)
    job_id: int | None = Field(None, ge=1, description="default: the attempt speaking for the cut")


class DecisionOut(BaseModel):
    id: int
    cut_id: int
    job_id: int
    phase: str
    outcome: str
    reviewer: str
    comment: str
    source: str
    previous_verdict: str | None
    overruled: list[dict]
    decided_at: datetime


async def _decide(cut_id: int, body: DecisionIn, source: str) -> DecisionOut:
    def run(session) -> DecisionOut:
        d = db_review.decide(
            session,
            cut_id=cut_id,
            phase=Phase(body.phase),
            outcome=ReviewOutcome(body.outcome),
            reviewer=body.reviewer,
            comment=body.comment,
            source=source,
            job_id=body.job_id,
        )
        session.refresh(d)
        return DecisionOut(
            id=d.id,
            cut_id=cut_id,
            job_id=d.job_id,
            phase=d.phase.value,
            outcome=d.outcome.value,
            reviewer=d.reviewer,
            comment=d.comment,
            source=d.source,
            previous_verdict=d.previous_verdict.value if d.previous_verdict else None,
            overruled=d.overruled,
            decided_at=d.decided_at,
        )

    try:
        return await in_session(run)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post(
    "/api/anime/cuts/{cut_id}/review",
    status_code=201,
    response_model=DecisionOut,
    responses={404: {}, 422: {}},
)
async def decide(body: DecisionIn, cut_id: int = Path(ge=1)) -> DecisionOut:
    """Approve or reject a cut's output; stored with the scores it overrules, and counted by
    the phase gate the next time it decides."""
    return await _decide(cut_id, body, "api")


@router.get("/api/anime/episodes/{episode_id}/review", responses={404: {}})
async def review_json(episode_id: int = Path(ge=1), needs_review: bool = Query(False)) -> dict:
    """Cuts in order with attempts, scores, verdicts, decisions and the cast's references."""
    found = await in_session(db_review.episode_review, episode_id, needs_review_only=needs_review)
    return {**asdict(found), "flagged": found.flagged}


# --- the page ---------------------------------------------------------------------------------

_STYLE = """
body{font-family:sans-serif;margin:1.5em;background:#fafafa}
.cut{background:#fff;border:1px solid #ccc;margin:1em 0;padding:.8em}
.cut.flagged{border-color:#d80}
.row{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
img{border:1px solid #999;max-width:320px}
.refs img{max-width:120px}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px}
.passed{color:#070}.failed{color:#b00}.needs_review{color:#d80}
pre{white-space:pre-wrap;font-size:.85em;max-width:60em}
"""


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _attempt_html(a: db_review.AttemptView, speaking: bool) -> str:
    pictures = "".join(
        f'<a href="/api/anime/artifacts/{i}/file"><img class="output" alt="attempt {a.attempt}" '
        f'src="/api/anime/artifacts/{i}/thumbnail"></a>'
        for i in a.artifact_ids
    )
    scores = "".join(
        f"<tr><td>{escape(s.metric)}</td><td>{escape(s.subject)}</td><td>{_num(s.value)}</td>"
        f"<td>{escape(s.comparator)} {_num(s.threshold)}</td>"
        f'<td class="{escape(s.verdict)}">{escape(s.verdict)}</td></tr>'
        for s in a.scores
    )
    decided = ""
    if a.decision:
        d = a.decision
        decided = (
            f"<p class=decision><b>{escape(d.outcome)}</b> by {escape(d.reviewer)} "
            f"({escape(d.source)}, {escape(d.decided_at.isoformat(timespec='seconds'))})"
            f"{': ' + escape(d.comment) if d.comment else ''}; overruled verdict "
            f"{escape(d.previous_verdict or 'none')}</p>"
        )
    mark = " (current output)" if speaking else ""
    return (
        f'<div class="attempt"><h4>attempt {a.attempt}, job {a.job_id}{mark}: '
        f'<span class="{escape(a.status)}">{escape(a.status)}</span></h4>'
        f'<div class="row">{pictures}<table><tr><th>metric</th><th>subject</th><th>value</th>'
        f"<th>threshold</th><th>verdict</th></tr>{scores}</table></div>"
        f"{decided}<pre>{escape(a.explanation)}</pre></div>"
    )


def _form(episode_id: int, cut: db_review.CutView, phase: str) -> str:
    action = f"/review/episodes/{episode_id}/cuts/{cut.cut_id}"
    return (
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="phase" value="{escape(phase)}">'
        '<label>reviewer <input name="reviewer" required></label> '
        '<label>comment <input name="comment" size="40"></label> '
        '<button name="outcome" value="approved">approve</button> '
        '<button name="outcome" value="rejected">reject</button></form>'
    )


def _cut_html(episode_id: int, cut: db_review.CutView) -> str:
    refs = "".join(
        f'<figure><img class="reference" alt="{escape(c.name)}" '
        f'src="/api/anime/references/{r}/thumbnail?width=160">'
        f"<figcaption>{escape(c.name)}</figcaption></figure>"
        for c in cut.cast
        for r in c.reference_ids
    )
    phases = ""
    for p in cut.phases:
        attempts = "".join(_attempt_html(a, a.job_id == p.speaking_job) for a in p.attempts)
        phases += (
            f'<section class="phase"><h3>{escape(p.phase)}: '
            f'<span class="{escape(p.status)}">{escape(p.status)}</span></h3>'
            f"{_form(episode_id, cut, p.phase)}{attempts}</section>"
        )
    flagged = " flagged" if cut.needs_review else ""
    return (
        f'<div class="cut{flagged}" id="cut-{cut.cut_id}"><h2>{escape(cut.label)}</h2>'
        f"<p>{escape(cut.description)}</p>"
        f'<div class="row"><div class="refs row">{refs or "no references"}</div></div>'
        f"{phases or '<p>not rendered yet</p>'}</div>"
    )


def review_page(review: db_review.EpisodeReview, needs_review: bool) -> str:
    title = f"{review.project} episode {review.number}: {review.title}"
    here = f"/review/episodes/{review.episode_id}"
    toggle = (
        f'<a href="{here}">show all cuts</a>'
        if needs_review
        else f'<a href="{here}?needs_review=1">only cuts that need review</a>'
    )
    body = "".join(_cut_html(review.episode_id, c) for c in review.cuts) or "<p>no cuts</p>"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>{review.flagged} cut(s) need review. {toggle}</p>{body}</body></html>"
    )


@router.get("/review/episodes/{episode_id}", response_class=HTMLResponse, responses={404: {}})
async def page(episode_id: int = Path(ge=1), needs_review: bool = Query(False)) -> HTMLResponse:
    found = await in_session(db_review.episode_review, episode_id, needs_review_only=needs_review)
    return HTMLResponse(review_page(found, needs_review))


@router.post("/review/episodes/{episode_id}/cuts/{cut_id}", responses={303: {}, 422: {}})
async def decide_from_page(
    request: Request, episode_id: int = Path(ge=1), cut_id: int = Path(ge=1)
) -> RedirectResponse:
    """The page's form (application/x-www-form-urlencoded); back to the page afterwards."""
    fields = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
    try:
        body = DecisionIn.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, problems) from None
    await _decide(cut_id, body, "page")
    return RedirectResponse(f"/review/episodes/{episode_id}#cut-{cut_id}", status_code=303)
