"""Images the studio reads from a production (references, style and source images): checked
once at import and bounded wherever they are decoded again.

A few kilobytes of PNG can declare 13000 x 13000 pixels and take gigabytes to decode, so the
pixel count is read from the header and refused above a cap before anything is decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image

# 40 megapixels: a 6000 x 6000 reference sheet fits with room to spare; decoding one at the cap
# costs ~160 MB as RGBA. ANIME_MAX_IMAGE_PIXELS raises or lowers it for a studio.
DEFAULT_MAX_PIXELS = 40_000_000
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


class ImageFileError(ValueError):
    """An image that is not one, is of a format the studio does not read, or is too large."""


def max_image_pixels() -> int:
    raw = os.environ.get("ANIME_MAX_IMAGE_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ImageFileError(
            f"ANIME_MAX_IMAGE_PIXELS must be a whole number, not {raw!r}"
        ) from None
    if value < 1:
        raise ImageFileError(f"ANIME_MAX_IMAGE_PIXELS must be at least 1, not {value}")
    return value


def open_image_file(path: Path) -> Image.Image:
    """The image opened lazily (header read, pixels not decoded) once its size is known safe;
    the caller closes it (``with open_image_file(p) as im``)."""
    cap = max_image_pixels()
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning (or error) comes at its cap; ours is stated below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageFileError(
            f"{path.name}: too many pixels, over the {cap:,} allowed (ANIME_MAX_IMAGE_PIXELS)"
        ) from None
    except OSError:
        raise ImageFileError(f"{path.name}: not a readable image") from None
    if image.format not in FORMATS:
        image.close()
        raise ImageFileError(
            f"{path.name}: {image.format or 'unknown'} is not an image format the studio reads "
            f"({', '.join(FORMATS)})"
        )
    width, height = image.size
    if width * height > cap:
        image.close()
        raise ImageFileError(
            f"{path.name}: {width} x {height} is {width * height:,} pixels, over the "
            f"{cap:,} allowed (ANIME_MAX_IMAGE_PIXELS)"
        )
    return image


def load_image_file(path: str | os.PathLike[str], mode: str = "RGB") -> Image.Image:
    """The image decoded and converted to ``mode``; refused before decoding when too large,
    and with its file name when truncated or not an image."""
    path = Path(path)
    image = open_image_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)
            return image.convert(mode)
    except (OSError, SyntaxError, ValueError) as exc:
        # Truncated data and broken chunks surface only here, at decoding.
        raise ImageFileError(
            f"{path.name}: the image data is damaged or cut short ({exc})"
        ) from None
    finally:
        image.close()


def image_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file cannot be used as an image, or None: what an import checks each image for.

    The image is decoded in full (bounded by the cap) so a truncated file is caught here and
    not halfway through a render.
    """
    try:
        load_image_file(path, mode="RGBA").close()
    except ImageFileError as exc:
        return str(exc)
    return None


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "ImageFileError",
    "image_problem",
    "load_image_file",
    "max_image_pixels",
    "open_image_file",
]
