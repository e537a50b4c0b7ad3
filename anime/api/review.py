"""Review: people see the outputs and decide where the gates cannot.

GET  /review/episodes/{id}[?needs_review=1]     the review room (server-rendered HTML, see
                                                 anime/api/review_page.py)
POST /review/episodes/{id}/cuts/{cut_id}         a decision from the page's form
GET  /api/anime/episodes/{id}/review             the same as JSON
POST /api/anime/cuts/{cut_id}/review             a decision as JSON
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anime.api.review_page import review_page
from db import continuity as db_continuity
from db import reels as db_reels
from db import review as db_review
from db.vocabulary import Phase, ReviewOutcome
from tasks.production import in_session
from tasks.reel.export import ReelSummary

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


def _page_data(session, episode_id: int, needs_review: bool):
    found = db_review.episode_review(session, episode_id, needs_review_only=needs_review)
    reel = db_reels.latest_reel(session, episode_id)
    summary = None if reel is None else ReelSummary.of(reel, f"{found.project} {found.number}")
    return found, summary, db_continuity.episode_continuity(session, episode_id)


@router.get("/review/episodes/{episode_id}", response_class=HTMLResponse, responses={404: {}})
async def page(episode_id: int = Path(ge=1), needs_review: bool = Query(False)) -> HTMLResponse:
    found, reel, continuity = await in_session(_page_data, episode_id, needs_review)
    return HTMLResponse(review_page(found, needs_review, reel, continuity))


@router.post("/review/episodes/{episode_id}/cuts/{cut_id}", responses={303: {}, 422: {}})
async def decide_from_page(
    request: Request, episode_id: int = Path(ge=1), cut_id: int = Path(ge=1)
) -> Response:
    """The page's decisions: its keyboard script sends JSON and gets the decision back; its
    form (application/x-www-form-urlencoded, no script) is sent back to the page."""
    raw = (await request.body()).decode("utf-8")
    as_json = request.headers.get("content-type", "").startswith("application/json")
    try:
        fields = json.loads(raw) if as_json else {k: v[0] for k, v in parse_qs(raw).items()}
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"body: not JSON ({exc.msg})") from None
    try:
        body = DecisionIn.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, problems) from None
    decided = await _decide(cut_id, body, "page")
    if as_json:
        return JSONResponse(decided.model_dump(mode="json"), status_code=201)
    return RedirectResponse(f"/review/episodes/{episode_id}#cut-{cut_id}", status_code=303)
