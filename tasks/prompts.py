"""Prompts from the story bible, the cast (attributes and chosen variations), scene and cut.

Order matters to diffusion models (earlier tokens weigh more), so the cut's subject comes first,
then who is in it, then where, then the house style.
"""

from __future__ import annotations

from pydantic import BaseModel

from db.briefs import CastBrief, CutBrief, StyleBrief

CAMERA_WORDS = {
    "close-up": "close-up shot",
    "medium-close": "medium close-up",
    "medium": "medium shot",
    "full": "full body shot",
    "wide": "wide shot",
    "low": "low angle",
    "high": "high angle",
    "slightly-low": "slightly low angle",
}


class Prompt(BaseModel):
    positive: str
    negative: str


def _join(parts: list[str]) -> str:
    seen: set[str] = set()
    out: list[str] = []
    for part in parts:
        for piece in (p.strip() for p in part.split(",")):
            key = piece.lower()
            if piece and key not in seen:
                seen.add(key)
                out.append(piece)
    return ", ".join(out)


def character_prompt(member: CastBrief) -> str:
    attributes = [f"{value} {key.replace('_', ' ')}" for key, value in member.attributes.items()]
    deltas = [delta for _, (_, delta) in sorted(member.variations.items()) if delta]
    # The variation deltas come after the attributes so that an outfit change overrides the
    # default outfit attribute in the model's reading order.
    return _join([member.base_prompt, *attributes, *deltas])


def camera_prompt(camera: dict) -> str:
    words = []
    for key in ("shot", "angle"):
        value = str(camera.get(key, "")).strip()
        if value and value != "eye-level":
            words.append(CAMERA_WORDS.get(value, value.replace("-", " ")))
    return ", ".join(words)


def build_cut_prompt(brief: CutBrief) -> Prompt:
    cast = [character_prompt(m) for m in brief.cast]
    count = len(brief.cast)
    crowd = "" if count < 2 else f"{count} characters"
    setting = ", ".join(p for p in (brief.location, brief.time_of_day) if p)
    positive = _join(
        [
            brief.description,
            crowd,
            *cast,
            camera_prompt(brief.camera),
            setting,
            brief.style.style_prompt,
        ]
    )
    negative = _join([brief.style.negative_prompt, *(m.negative_prompt for m in brief.cast)])
    return Prompt(positive=positive, negative=negative)


def build_sheet_prompt(member: CastBrief, style: StyleBrief, view: str) -> Prompt:
    positive = _join(
        [
            f"character sheet, {view} view, single character, plain background",
            character_prompt(member),
            style.style_prompt,
        ]
    )
    return Prompt(
        positive=positive, negative=_join([style.negative_prompt, member.negative_prompt])
    )
