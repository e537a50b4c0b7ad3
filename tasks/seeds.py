"""Deterministic seeds: the same cut, phase and attempt always get the same seed, so a re-run
re-attaches to (or reproduces) the same render, and regeneration walks a fixed sequence."""

from __future__ import annotations

import hashlib

SEED_SPACE = 2**32
STRIDE = 1_000_003  # a prime, so consecutive attempts land far apart


def base_seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % SEED_SPACE


def attempt_seed(key: str, attempt: int, override: int | None = None) -> int:
    """Seed of ``attempt`` (1-based). A seed fixed by the production file starts the sequence."""
    start = base_seed(key) if override is None else int(override) % SEED_SPACE
    return (start + (attempt - 1) * STRIDE) % SEED_SPACE
