"""The contact sheet: one row per scene, one picture per cut, its label and source beneath."""

from __future__ import annotations

from PIL import Image, ImageDraw

from tasks.reel.slate import NOT_APPROVED, _font

THUMB = (192, 108)
CAPTION = 30
GAP = 8
SOURCE_COLOUR = {
    "animation": (40, 140, 60),
    "keyframe": (40, 100, 170),
    "attempt": NOT_APPROVED,
    "slate": (110, 110, 120),
}


def contact_sheet(rows: list[list[tuple[str, str, Image.Image]]]) -> Image.Image:
    """``rows``: per scene, (label, source, picture) for each of its cuts."""
    columns = max((len(r) for r in rows), default=1) or 1
    width = GAP + columns * (THUMB[0] + GAP)
    height = GAP + max(1, len(rows)) * (THUMB[1] + CAPTION + GAP)
    sheet = Image.new("RGB", (width, height), (245, 245, 248))
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for r, row in enumerate(rows):
        top = GAP + r * (THUMB[1] + CAPTION + GAP)
        for c, (label, source, picture) in enumerate(row):
            left = GAP + c * (THUMB[0] + GAP)
            thumb = picture.copy()
            thumb.thumbnail(THUMB)
            sheet.paste(thumb, (left, top))
            colour = SOURCE_COLOUR.get(source, (0, 0, 0))
            draw.rectangle((left, top + THUMB[1], left + THUMB[0], top + THUMB[1] + 4), fill=colour)
            caption = (left, top + THUMB[1] + 8)
            draw.text(caption, f"{label}  {source}", fill=(20, 20, 20), font=font)
    return sheet
