"""The reel encoded while the run renders: each cut's segment as soon as its scene is done, in
a process of its own at the lowest CPU priority, so that it takes only time the renders and
the orchestrator leave idle, and the run's end (tasks/reel/task.py) has little left to do.

A process, not a thread: a thread at low priority holding the GIL would stall the run's event
loop whenever the kernel leaves it waiting. A segment is kept under a name made of everything
its frames come from (segments.py), so one encoded here from a guess that turns out wrong (the
cut re-rendered later, the reel's size decided by another cut) is simply not used: the end
encodes what the reel needs.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

import anyio

from db import reels as db_reels
from db.engine import session_scope
from tasks.reel.assemble import cut_spans, segments_folder
from tasks.reel.segments import segment

log = logging.getLogger(__name__)


def _lowest_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(19)


class ReelAhead:
    """``ahead.add(cut_ids)`` as cuts finish; ``await ahead.aclose()`` before the reel."""

    def __init__(self, episode_id: int, root: Path | None = None) -> None:
        self._episode_id, self._root = episode_id, root
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._submitted: list[Future[object]] = []
        # spawn: the run's process has threads (Prefect's), which a fork must not copy.
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_lowest_priority,
        )
        self._thread = threading.Thread(target=self._work, name="reel-ahead", daemon=True)
        self._thread.start()

    def add(self, cut_ids: list[int]) -> None:
        for cut_id in cut_ids:
            self._queue.put(cut_id)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    def close(self, finish: bool = False) -> None:
        """Encode nothing more than the segment in hand, and wait for it: what is left is
        encoded by the reel itself, on every core at full priority. ``finish``: encode all
        the cuts handed over first."""
        self._queue.put(None)
        self._thread.join()
        if finish:
            self._pool.shutdown(wait=True)
            return
        for future in self._submitted:
            future.cancel()  # only those no worker has taken
        wait([f for f in self._submitted if f.running()], timeout=60)
        self._pool.shutdown(wait=False, cancel_futures=True)
        # A worker still starting (at nice 19 on a busy machine: seconds) or idle holds
        # nothing: the run does not wait for it.
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()

    def _work(self) -> None:
        # Nothing is read before the first scene is done: the run's start is the renders'.
        cut_id = self._queue.get()
        if cut_id is None:
            return
        try:  # the plan as it stands: each cut's frame count, the reel's fps and size
            with session_scope() as session:
                plan = db_reels.reel_plan(session, self._episode_id)
        except Exception:  # noqa: BLE001 (nothing encoded ahead: the reel encodes it all)
            log.debug("no reel plan for episode %s", self._episode_id, exc_info=True)
            return
        spans = cut_spans(plan.cuts, plan.fps)
        frames = {c.cut_id: n for c, (_, n) in zip(plan.cuts, spans, strict=True)}
        folder = segments_folder(plan, self._root)
        while cut_id is not None:
            self._submit(cut_id, plan, frames, folder)
            cut_id = self._queue.get()

    def _submit(
        self, cut_id: int, plan: db_reels.ReelPlan, frames: dict[int, int], folder: Path
    ) -> None:
        try:
            with session_scope() as session:
                view = db_reels.reel_cut_by_id(session, cut_id)
        except Exception:  # noqa: BLE001 (a cut not read costs nothing: the end encodes it)
            log.debug("cut %s not read for the reel", cut_id, exc_info=True)
            return
        if view is None or view.footage is None or cut_id not in frames:
            return  # a slate costs little to make at the end
        size = (plan.width, plan.height)
        footage = view.footage
        if plan.sized_by == "default" and footage.width and footage.height:
            size = db_reels.frame_size(footage.width, footage.height)  # as the first output's
        self._submitted.append(
            self._pool.submit(segment, view, frames[cut_id], plan.fps, size, folder)
        )


@contextlib.asynccontextmanager
async def closing_ahead(ahead: ReelAhead | None) -> AsyncIterator[None]:
    """Stops the encoding ahead when the phases are over, however they end."""
    try:
        yield
    finally:
        if ahead is not None:
            await ahead.aclose()
