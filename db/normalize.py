"""One canonical form for character attributes, applied on every write.

"Blue", "blue " and "BLUE" must be one value, and "hair colour" / "Hair-Color" one key, or the
prompt builder and the review tools would treat one character as several.
"""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
_KEY_SEPARATORS = re.compile(r"[\s\-]+")

# Known synonyms, written in their already-lowered, whitespace-collapsed form.
KEY_SYNONYMS: dict[str, str] = {
    "hair_colour": "hair_color",
    "haircolor": "hair_color",
    "haircolour": "hair_color",
    "hair_colors": "hair_color",
    "eye": "eyes",
    "eye_color": "eyes",
    "eye_colour": "eyes",
    "eyes_color": "eyes",
    "eyes_colour": "eyes",
    "clothes": "outfit",
    "clothing": "outfit",
    "costume": "outfit",
    "attire": "outfit",
    "skin_colour": "skin_tone",
    "skin_color": "skin_tone",
    "skin": "skin_tone",
    "hairstyle": "hair_style",
    "hair_cut": "hair_style",
    "haircut": "hair_style",
    "height_cm": "height",
}

VALUE_SYNONYMS: dict[str, str] = {
    "blond": "blonde",
    "grey": "gray",
    "colour": "color",
    "dark brown": "dark brown",
    "auburn red": "auburn",
    "navy": "navy blue",
    "jet black": "black",
}


def normalize_attribute_key(key: str) -> str:
    """Lower case, words joined by underscores, known synonyms folded."""
    cleaned = _KEY_SEPARATORS.sub("_", key.strip().lower()).strip("_")
    if not cleaned:
        raise ValueError(f"attribute key {key!r} is empty after normalization")
    return KEY_SYNONYMS.get(cleaned, cleaned)


def normalize_attribute_value(value: str) -> str:
    """Lower case, single spaces, known synonyms folded (per word and as a whole)."""
    cleaned = _SPACES.sub(" ", str(value).strip().lower())
    if not cleaned:
        raise ValueError(f"attribute value {value!r} is empty after normalization")
    if cleaned in VALUE_SYNONYMS:
        return VALUE_SYNONYMS[cleaned]
    return " ".join(VALUE_SYNONYMS.get(word, word) for word in cleaned.split(" "))


def slugify(text: str) -> str:
    """A stable, URL- and path-safe identifier for names people type."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")
    if not slug:
        raise ValueError(f"{text!r} has no letters or digits to make a slug from")
    return slug
