"""Where the studio's own model files live on disk, without importing torch.

Kept apart from the loaders (and from the ScoringModels block) so that asking "is this model
installed?" (``anime import``'s reference check) costs a stat, not a torch or Prefect import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from blocks.model_files import AESTHETIC_HEAD_FILE

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels


def models_dir() -> Path:
    """The studio's own model folder: ``$XDG_CACHE_HOME/tower-anime/models``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "tower-anime" / "models"


def aesthetic_head_path(models: ScoringModels | None = None) -> Path:
    """The LAION aesthetic head file the block reads (None: a block left at its defaults):
    its own path, else the models folder."""
    if models is not None and models.aesthetic_head:
        return Path(models.aesthetic_head).expanduser()
    return models_dir() / AESTHETIC_HEAD_FILE
