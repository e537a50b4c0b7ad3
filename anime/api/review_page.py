"""The review room as HTML: the reel with a marker per cut on top, then one card per cut with
its clip in place, the scores of the attempt speaking for it, its cast's references, the strip
of its earlier attempts and the decision form. Everything a person wrote is escaped."""

from __future__ import annotations

from html import escape

from anime.api.review_assets import SCRIPT, STYLE
from db import review as db_review
from db.continuity import ContinuityLine
from tasks.reel.export import ReelSummary

STATUSES = ("needs_review", "passed", "failed", "error", "not_rendered")


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _scores(a: db_review.AttemptView) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.metric)}</td><td>{escape(s.subject)}</td><td>{_num(s.value)}</td>"
        f"<td>{escape(s.comparator)} {_num(s.threshold)}</td>"
        f'<td class="{escape(s.verdict)}">{escape(s.verdict)}</td></tr>'
        for s in a.scores
    )
    return (
        "<table><tr><th>metric</th><th>subject</th><th>value</th><th>threshold</th>"
        f"<th>verdict</th></tr>{rows or '<tr><td colspan=5>no scores</td></tr>'}</table>"
    )


def _decision(a: db_review.AttemptView) -> str:
    if not a.decision:
        return ""
    d = a.decision
    return (
        f"<p class=decision><b>{escape(d.outcome)}</b> by {escape(d.reviewer)} "
        f"({escape(d.source)}, {escape(d.decided_at.isoformat(timespec='seconds'))})"
        f"{': ' + escape(d.comment) if d.comment else ''}; overruled verdict "
        f"{escape(d.previous_verdict or 'none')}</p>"
    )


def _attempt_html(a: db_review.AttemptView, speaking: bool) -> str:
    pictures = "".join(
        f'<a href="/api/anime/artifacts/{i}/file"><img class="output" alt="attempt {a.attempt}" '
        f'src="/api/anime/artifacts/{i}/thumbnail"></a>'
        for i in a.artifact_ids
    )
    mark = " (current output)" if speaking else ""
    return (
        f'<div class="attempt"><h4>attempt {a.attempt}, job {a.job_id}{mark}: '
        f'<span class="{escape(a.status)}">{escape(a.status)}</span></h4>'
        f"{pictures}{_scores(a)}{_decision(a)}<pre>{escape(a.explanation)}</pre></div>"
    )


def _form(episode_id: int, cut: db_review.CutView, phase: str) -> str:
    action = f"/review/episodes/{episode_id}/cuts/{cut.cut_id}"
    return (
        f'<form class="decide" method="post" action="{action}">'
        f'<input type="hidden" name="phase" value="{escape(phase)}">'
        '<label class="reviewer-field">reviewer <input name="reviewer"></label>'
        '<input class="comment" name="comment" placeholder="comment (r: reject, Enter sends)">'
        '<button name="outcome" value="approved">approve <kbd>a</kbd></button>'
        '<button name="outcome" value="rejected">reject <kbd>r</kbd></button>'
        '<span class="decided"></span></form>'
    )


def _speaking(p: db_review.PhaseView) -> db_review.AttemptView | None:
    return next((a for a in p.attempts if a.job_id == p.speaking_job), None) or (
        p.attempts[-1] if p.attempts else None
    )


def _strip(cut: db_review.CutView) -> str:
    figures = []
    for p in cut.phases:
        for a in p.attempts:
            if not a.artifact_ids:
                continue
            speaking = " speaking" if a.job_id == p.speaking_job else ""
            figures.append(
                f'<figure class="earlier{speaking}"><a href="/api/anime/artifacts/'
                f'{a.artifact_ids[0]}/file"><img class="attempt-thumb" alt="{escape(p.phase)} '
                f'attempt {a.attempt}" src="/api/anime/artifacts/{a.artifact_ids[0]}/thumbnail'
                f'?width=120"></a><figcaption>{escape(p.phase[:3])} #{a.attempt} '
                f'<span class="{escape(a.status)}">{escape(a.status)}</span></figcaption></figure>'
            )
    return f'<div class="strip">{"".join(figures)}</div>' if figures else ""


def _clip(cut: db_review.CutView, reel: ReelSummary | None, span: dict | None) -> str:
    """The cut's part of the reel, playing in place; else its current output's picture."""
    if reel is not None and span is not None:
        start = span["start_frame"] / reel.fps
        end = (span["start_frame"] + span["frames"]) / reel.fps
        return (
            f'<video class="clip" muted playsinline preload="metadata" data-start="{start:.4f}" '
            f'data-end="{end:.4f}" src="/api/anime/reels/{reel.reel_id}/file#t={start:.4f},'
            f'{end:.4f}"></video><div class="keys">{escape(span["source"])}'
            f'{", job " + str(span["job_id"]) if span["job_id"] else ""}</div>'
        )
    for p in reversed(cut.phases):
        if (a := _speaking(p)) and a.artifact_ids:
            return (
                f'<img class="output" alt="{escape(cut.label)}" '
                f'src="/api/anime/artifacts/{a.artifact_ids[0]}/thumbnail">'
            )
    return "<p>not rendered yet</p>"


def _look_caption(cast: db_review.CastView) -> str:
    return "" if cast.look == "base" else f" ({escape(cast.look)})"


def _cut_html(
    episode_id: int, cut: db_review.CutView, reel: ReelSummary | None, span: dict | None
) -> str:
    refs = "".join(
        f'<figure><img class="reference" alt="{escape(c.name)}" '
        f'src="/api/anime/references/{r}/thumbnail?width=160">'
        f"<figcaption>{escape(c.name)}{_look_caption(c)}</figcaption></figure>"
        for c in cut.cast
        for r in c.reference_ids
    )
    flagged = next((p for p in cut.phases if p.status == "needs_review"), None)
    phase = flagged or (cut.phases[-1] if cut.phases else None)
    status = phase.status if phase else "not_rendered"
    speaking = _speaking(phase) if phase else None
    scores = _scores(speaking) if speaking else "<p>no attempt judged yet</p>"
    details = "".join(
        f'<section class="phase"><h3>{escape(p.phase)}: '
        f'<span class="{escape(p.status)}">{escape(p.status)}</span></h3>'
        + "".join(_attempt_html(a, a.job_id == p.speaking_job) for a in p.attempts)
        + "</section>"
        for p in cut.phases
    )
    form = _form(episode_id, cut, phase.phase if phase else "generation")
    characters = " ".join(escape(c.slug) for c in cut.cast)
    start = "" if span is None else str(span["start_frame"])
    return (
        f'<article class="cut{" flagged" if cut.needs_review else ""}" id="cut-{cut.cut_id}" '
        f'tabindex="-1" data-cut="{cut.cut_id}" data-label="{escape(cut.label)}" '
        f'data-scene="{cut.scene}" data-status="{escape(status)}" '
        f'data-phase="{escape(phase.phase if phase else "generation")}" '
        f'data-characters="{characters}" data-start="{start}" data-fps="{cut.fps}" '
        f'data-reel-fps="{reel.fps if reel else ""}">'
        f'<header><h2>{escape(cut.label)}</h2><span class="badge {escape(status)}">'
        f"{escape(status.replace('_', ' '))}</span><span>{cut.frames} frames at {cut.fps} fps"
        f"</span></header><p class=desc>{escape(cut.description)}</p>"
        f'<div class="grid"><div>{_clip(cut, reel, span)}</div><div>'
        f'{escape(phase.phase) + " scores" if phase else ""}{scores}{form}</div>'
        f'<div class="refs">{refs or "no references"}</div></div>{_strip(cut)}'
        f"<details><summary>every attempt, its scores and explanation</summary>"
        f"{details or '<p>not rendered yet</p>'}</details></article>"
    )


def _player(reel: ReelSummary | None) -> str:
    if reel is None:
        return (
            '<section id="player"><p class="note">No reel yet: a render-episode run, or '
            "<code>anime episode export PROJECT EPISODE</code>, builds one.</p></section>"
        )
    markers = "".join(
        f'<button class="marker {escape(c["source"])}" data-cut="{c["cut_id"]}" '
        f'title="{escape(c["label"])}: {escape(c["source"])}" '
        f'style="left:{100 * c["start_frame"] / reel.frames:.3f}%;'
        f'width:{100 * c["frames"] / reel.frames:.3f}%">{escape(c["label"][-6:])}</button>'
        for c in reel.cuts
    )
    return (
        f'<section id="player"><video id="reel" controls preload="auto" data-fps="{reel.fps}" '
        f'src="/api/anime/reels/{reel.reel_id}/file"></video><div id="markers">{markers}</div>'
        f'<p class="note">reel {reel.reel_id}: {reel.frames} frames at {reel.fps} fps, '
        f"{reel.duration_seconds:.2f} s &middot; "
        f'<a href="/api/anime/reels/{reel.reel_id}/contact-sheet">contact sheet</a></p></section>'
    )


def _continuity(cut_id: int, lines: list[ContinuityLine], labels: dict[int, str]) -> str:
    """Between two cards: how well the later cut picks up where the earlier one ended."""
    if not lines:
        return ""
    parts = []
    for line in lines:
        name = line.metric.removeprefix("continuity_")
        name += f" {line.subject}" if line.subject else ""
        if line.value is None:
            shown = f"could not judge ({escape(line.reason or 'no reason given')})"
        else:
            shown = (
                f"{_num(line.value)} <span class=\"{escape(line.verdict)}\">{escape(line.verdict)}"
                f"</span> {escape(line.comparator)} {_num(line.threshold)}"
            )
        parts.append(f"{escape(name)}: {shown}")
    before = labels.get(lines[0].previous_cut_id, "the cut before")
    return (
        f'<p class="continuity" data-after="{cut_id}">continuity with {escape(before)} '
        f"(its last frame, this cut's first): {' &middot; '.join(parts)}</p>"
    )


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    items = "".join(f'<option value="{escape(v)}">{escape(t)}</option>' for v, t in options)
    return (
        f'<label>{label} <select class="filter" id="filter-{name}">'
        f'<option value="">all</option>{items}</select></label>'
    )


def review_page(
    review: db_review.EpisodeReview,
    needs_review: bool,
    reel: ReelSummary | None = None,
    continuity: dict[int, list[ContinuityLine]] | None = None,
) -> str:
    title = f"{review.project} episode {review.number}: {review.title}"
    here = f"/review/episodes/{review.episode_id}"
    toggle = (
        f'<a href="{here}" style="color:#9fb4ff">show all cuts</a>'
        if needs_review
        else f'<a href="{here}?needs_review=1" style="color:#9fb4ff">only cuts that need review</a>'
    )
    spans = {c["cut_id"]: c for c in (reel.cuts if reel else [])}
    scenes = sorted({c.scene for c in review.cuts})
    cast = sorted({(c.slug, c.name) for cut in review.cuts for c in cut.cast})
    filters = (
        _select("status", "status", [(s, s.replace("_", " ")) for s in STATUSES])
        + _select("scene", "scene", [(str(s), f"scene {s}") for s in scenes])
        + _select("character", "character", cast)
    )
    labels = {c.cut_id: c.label for c in review.cuts}
    continuity = continuity or {}
    body = "".join(
        _continuity(c.cut_id, continuity.get(c.cut_id, []), labels)
        + _cut_html(review.episode_id, c, reel, spans.get(c.cut_id))
        for c in review.cuts
    ) or "<p>no cuts</p>"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header class="top"><h1>{escape(title)}</h1>'
        f"<span>{review.flagged} cut(s) need review &middot; <span id=shown>"
        f"{len(review.cuts)}</span> shown &middot; {toggle}</span>"
        f'<label>reviewer <input id="reviewer" size="12" placeholder="your name"></label>'
        f"{filters}<span class=keys><kbd>j</kbd>/<kbd>k</kbd> next/previous &middot; "
        "<kbd>a</kbd> approve &middot; <kbd>r</kbd> reject &middot; <kbd>&larr;</kbd>"
        "<kbd>&rarr;</kbd> frame &middot; <kbd>space</kbd> play</span></header>"
        f"{_player(reel)}<main>{body}</main><div id=flash></div>"
        f"<script>{SCRIPT}</script></body></html>"
    )
