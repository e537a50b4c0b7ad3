"""Where outputs live on disk: one folder per project / episode / scene / cut / phase / attempt."""

from __future__ import annotations

import os
from pathlib import Path

from db.engine import data_dir


def artifacts_root() -> Path:
    override = os.environ.get("ANIME_ARTIFACTS_DIR")
    return Path(override).expanduser().resolve() if override else data_dir() / "artifacts"


def cut_output_dir(
    root: Path, project: str, episode: int, scene: int, cut: int, phase: str, attempt: int
) -> Path:
    return (
        root
        / project
        / f"ep{episode:03d}"
        / f"sc{scene:03d}"
        / f"cut{cut:03d}"
        / phase
        / (f"attempt-{attempt:02d}")
    )


def character_output_dir(root: Path, project: str, character: str, attempt: int) -> Path:
    return root / project / "characters" / character / "sheets" / f"attempt-{attempt:02d}"
