"""Where a production's images may live: inside the production file's folder, or under the
studio's media root (ANIME_MEDIA_ROOT, folders separated by the OS path separator).

Checked at import and again whenever a stored path is opened to be served, so neither
``../../etc/passwd`` nor a symlink pointing out of the folder reads a file the production
does not own.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def media_roots() -> list[Path]:
    raw = os.environ.get("ANIME_MEDIA_ROOT", "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def allowed_roots(production_root: str | Path | None) -> list[Path]:
    roots = [Path(production_root).resolve()] if production_root else []
    return roots + media_roots()


def contained(path: str | Path, production_root: str | Path | None) -> Path | None:
    """``path`` resolved (symlinks followed) when it lies inside an allowed root, else None."""
    resolved = Path(path).expanduser().resolve()
    for root in allowed_roots(production_root):
        if resolved.is_relative_to(root):
            return resolved
    return None


__all__ = ["allowed_roots", "contained", "media_roots"]


def content_sha256(path: str | Path) -> str:
    """The file's sha256, read in chunks (an image is never held whole for this)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
