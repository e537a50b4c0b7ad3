"""What the reel shows where a cut has nothing approved: a slate, or a mark on the footage."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

from db.reels import ReelCut

SLATE_BACKGROUND = (28, 30, 40)
NOT_APPROVED = (190, 30, 30)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def slate(cut: ReelCut, size: tuple[int, int], reason: str | None = None) -> Image.Image:
    """A card naming the cut, what it should show, its status and why there is no footage."""
    w, h = size
    image = Image.new("RGB", size, SLATE_BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, body = _font(max(14, h // 9)), _font(max(10, h // 22))
    draw.text((w // 16, h // 10), cut.label, fill=(255, 255, 255), font=big)
    scene = f"scene {cut.scene}" + (f": {cut.scene_title}" if cut.scene_title else "")
    lines = [f"{scene}   {cut.seconds:.2f} s", ""]
    lines += textwrap.wrap(cut.description or "(no description)", width=max(20, w // 10))[:4]
    lines += ["", f"status: {cut.status}"]
    if reason:
        lines += textwrap.wrap(f"no footage: {reason}", width=max(20, w // 10))[:2]
    top = h // 10 + max(14, h // 9) + h // 20
    for i, line in enumerate(lines):
        draw.text((w // 16, top + i * (h // 18)), line, fill=(220, 220, 230), font=body)
    draw.rectangle((0, 0, w - 1, h - 1), outline=(90, 90, 110), width=2)
    return image


def mark_not_approved(frame: Image.Image, cut: ReelCut) -> Image.Image:
    """A red band over the footage: nobody takes an unapproved attempt for the real thing."""
    w, h = frame.size
    marked = frame.copy()
    draw = ImageDraw.Draw(marked)
    band = max(14, h // 14)
    draw.rectangle((0, h - band, w, h), fill=NOT_APPROVED)
    text = f"NOT APPROVED  {cut.label}  {cut.status}"
    draw.text((6, h - band + 2), text, fill=(255, 255, 255), font=_font(max(10, band - 5)))
    return marked
