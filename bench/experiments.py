"""Further overhead cuts, tried in the benchmarked process only, to measure what each gains.

None of these is shipped: each stands in for a change in flows/, tasks/ or blocks/ that
docs/benchmarks.md weighs, so that its effect is measured before it is made (the fixes that
paid were made for real and are no longer here). `apply()` runs after
`bench.probes.install()`, so the probes still time the real cut path; every experiment keeps
what a user sees on a fresh run (every cut rendered once, judged, stored).
"""

from __future__ import annotations

from typing import Any

EXPERIMENTS = {
    "env_cache": "a server's /system_stats read once per process, not after every render",
}


def apply(names: list[str], total_slots: int) -> None:
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; known: {sorted(EXPERIMENTS)}")
    for name in names:
        globals()[f"_{name}"](total_slots)


def _env_cache(_: int) -> None:
    from blocks.comfyui import ComfyUIClient

    stats = ComfyUIClient.system_stats
    cache: dict[str, Any] = {}

    async def system_stats(self: ComfyUIClient) -> Any:
        if self.server not in cache:
            cache[self.server] = await stats(self)
        return cache[self.server]

    ComfyUIClient.system_stats = system_stats  # type: ignore[method-assign]
