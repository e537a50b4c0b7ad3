"""Aesthetic scores of reference images, remembered by content, per model setup.

``anime import`` checks the production's reference images against its gates on every import:
scoring them all again would load CLIP ViT-L/14 and cost seconds per image each time. A score
depends only on the image's bytes and on the models that gave it, so it is kept under the
sha256 of the file, per setup (the block fields and model files that change the weights), in
one JSON file beside the studio's model folder: only new or changed images are scored. The
database holds no such score (reference rows carry no content hash for imported images), and
the score belongs to this machine's model files, so the cache lives with them.

Reading it never imports torch: with every reference already scored, no model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.scoring.loading.places import aesthetic_head_path, models_dir

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

logger = logging.getLogger(__name__)

VERSION = 1


def scores_file() -> Path:
    """``$XDG_CACHE_HOME/tower-anime/reference-scores.json``, beside the models folder."""
    return models_dir().parent / "reference-scores.json"


def _stamp(path: Path) -> list[int] | None:
    """Size and modification time: a replaced weights file is another setup."""
    try:
        found = path.stat()
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns]


def setup_key(models: ScoringModels) -> str:
    """What the aesthetic score of an image depends on besides the image."""
    clip_file = Path(os.path.expanduser(models.clip_pretrained))
    head = aesthetic_head_path(models)
    parts = {
        "clip_model": models.clip_model,
        "clip_pretrained": models.clip_pretrained,
        "clip_cache_dir": models.clip_cache_dir,
        "clip_file": _stamp(clip_file) if clip_file.is_file() else None,
        "head": str(head),
        "head_file": _stamp(head),
        "device": models.device,
        "half_precision": models.half_precision,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


class ReferenceScores:
    """The remembered aesthetic scores of one model setup: image sha256 -> score."""

    def __init__(self, models: ScoringModels, path: Path | None = None) -> None:
        self.path = path or scores_file()
        self.setup = setup_key(models)
        found = self._read().get(self.setup)
        self.scores: dict[str, float] = {
            digest: float(value)
            for digest, value in (found.items() if isinstance(found, dict) else ())
            if isinstance(value, int | float)
        }

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: it is only a cache
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return {}
        setups = data.get("setups")
        return setups if isinstance(setups, dict) else {}

    def get(self, sha256: str) -> float | None:
        return self.scores.get(sha256)

    def save(self, new: dict[str, float]) -> None:
        """Add ``new`` scores and write the file atomically; a failed write only costs a
        rescore next time."""
        if not new:
            return
        self.scores.update(new)
        setups = {**self._read(), self.setup: self.scores}  # keep what another run added
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".part")
        except OSError as exc:
            logger.debug("reference scores not cached in %s: %s", self.path, exc)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": VERSION, "setups": setups}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.debug("reference scores not cached in %s: %s", self.path, exc)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
