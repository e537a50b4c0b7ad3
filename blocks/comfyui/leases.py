"""Server slots as Prefect concurrency leases, each noted on local disk while it is held, so
that the slots of a process that died (kill -9, a lost machine power) are given back when
the next run on this machine starts instead of when their lease expires.

Prefect's API has no list of a limit's leases: the note (`<PREFECT_HOME>/comfyui-leases/`,
one file per lease with its process id and that process's start time) is the only record
of who holds which lease. A process is dead when no process with that id exists, or one
does that started at another time (the id was reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.concurrency._asyncio import aacquire_concurrency_slots_with_lease
from prefect.concurrency.context import ConcurrencyContext
from prefect.settings import get_current_settings

logger = logging.getLogger("blocks.comfyui.pool")


def lease_dir() -> Path:
    return Path(get_current_settings().home) / "comfyui-leases"


def _api() -> str:
    """The Prefect API the lease was taken from (a note of another API is not ours)."""
    return str(get_current_settings().api.url or "")


def process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def process_alive(pid: int, started: str | None) -> bool:
    """Whether the process of this machine with that id (and start time) still runs."""
    if Path("/proc/self/stat").exists():
        now = process_started(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)  # no /proc (macOS): existence only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ComfyUISlotLost(RuntimeError):
    """The slot's lease could not be renewed: the server may give it to another render."""


RENEW_AT = 0.75  # of the lease's duration
RENEW_TRIES = 3


class SlotLease:
    """One slot of the global concurrency limit `name`, held by this process from `take` to
    `give_back`: renewed on this loop's Prefect client while held, and noted on disk. Between
    the two it may serve several renders in turn (`held`), each handing it to the next
    without going back to Prefect.

    Renewal is this loop's own: a render shorter than `RENEW_AT` of the lease renews nothing.
    (Prefect's `amaintain_concurrency_lease` starts a thread with a new sync client and renews
    at once: per render, a TLS context, a thread and a request that a short render never
    needs.) When renewal fails, the render holding the slot is cancelled and `ComfyUISlotLost`
    raised: holding on would oversubscribe the server."""

    def __init__(self, name: str, lease_id: uuid.UUID, duration_s: float) -> None:
        self.name = name
        self.lease_id = lease_id
        self.duration_s = duration_s
        self.taken_at = time.monotonic()
        self._note = _note(lease_id, name)
        self._holder: asyncio.Task[Any] | None = None
        self._lost: BaseException | None = None
        self._renewer = asyncio.create_task(self._renew())

    @classmethod
    async def take(cls, name: str, duration_s: float) -> SlotLease:
        """Raises `ConcurrencySlotAcquisitionError` when no slot is free at once (or the
        limit does not exist)."""
        response = await aacquire_concurrency_slots_with_lease(
            names=[name], slots=1, max_retries=0, lease_duration=duration_s, strict=True
        )
        return cls(name, response.lease_id, duration_s)

    async def _renew(self) -> None:
        async with get_client() as client:
            while True:
                await asyncio.sleep(self.duration_s * RENEW_AT)
                for attempt in range(RENEW_TRIES):
                    try:
                        await client.renew_concurrency_lease(self.lease_id, self.duration_s)
                        break
                    except Exception as exc:
                        if attempt == RENEW_TRIES - 1:
                            self._lost = exc
                            if self._holder is not None:
                                self._holder.cancel()
                            return
                        pause = min(2.0**attempt, self.duration_s * (1 - RENEW_AT) / 3)
                        await asyncio.sleep(pause)

    def _slot_lost(self) -> ComfyUISlotLost:
        return ComfyUISlotLost(
            f"the lease on a slot of {self.name} could not be renewed ({self._lost}); the "
            "render was stopped so that the server's slots are not oversubscribed"
        )

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The calling task holds the slot for the block: it is cancelled if the lease is
        lost meanwhile, and the block ends in `ComfyUISlotLost`."""
        if self._lost is not None:
            raise self._slot_lost() from self._lost
        holder = asyncio.current_task()
        self._holder = holder
        try:
            yield
        except asyncio.CancelledError:
            if self._lost is not None:
                if holder is not None:
                    holder.uncancel()  # the cancel was ours: it ends here, as this error
                raise self._slot_lost() from self._lost
            raise
        finally:
            self._holder = None

    def pass_on(self) -> None:
        """The lease leaves the task that took it: Prefect's run context of that task would
        otherwise give it back when the task ends (through a new sync client, a TLS context
        and a request per render), under the render it was handed to."""
        if (context := ConcurrencyContext.get()) and self.lease_id in context.cleanup_lease_ids:
            context.cleanup_lease_ids.remove(self.lease_id)

    async def give_back(self) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            async with get_client() as client:
                await client.release_concurrency_slots_with_lease(lease_id=self.lease_id)
            self.pass_on()
        except Exception as exc:  # noqa: BLE001 - the render's own outcome (or ComfyUISlotLost) stands
            logger.warning(
                "the slot of %s was not given back (%s): it frees itself when its lease "
                "expires, within %g s",
                self.name,
                exc,
                self.duration_s,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._note.unlink()


def _note(lease_id: uuid.UUID, name: str) -> Path:
    folder = lease_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    path = folder / f"{lease_id}.json"
    record = {
        "lease_id": str(lease_id),
        "limit": name,
        "host": socket.gethostname(),
        "pid": pid,
        "process_started": process_started(pid),
        "api": _api(),
    }
    path.write_text(json.dumps(record))
    return path


async def release_dead_leases() -> list[str]:
    """Give back every slot a dead process of this machine still holds; the limits' names,
    one per lease released. Idempotent; safe while other processes render."""
    folder = lease_dir()
    if not folder.is_dir():
        return []
    host = socket.gethostname()
    released: list[str] = []
    async with get_client() as client:
        for path in sorted(folder.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written by a live process, or gone already
            if (
                record.get("api") != _api()
                or record.get("host") != host
                or process_alive(int(record.get("pid", 0)), record.get("process_started"))
            ):
                continue
            with contextlib.suppress(Exception):  # an expired lease is gone already
                await client.release_concurrency_slots_with_lease(uuid.UUID(record["lease_id"]))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            released.append(str(record.get("limit")))
            logger.warning(
                "gave back a slot of %s held by dead process %s",
                record.get("limit"),
                record.get("pid"),
            )
    return released
