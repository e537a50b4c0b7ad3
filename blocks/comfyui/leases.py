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
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

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


@contextlib.asynccontextmanager
async def leased_slot(name: str, lease_duration_s: float) -> AsyncIterator[None]:
    """Hold one slot of the global concurrency limit `name`, renewed while held, noted on
    disk until it is given back. Raises `ConcurrencySlotAcquisitionError` when no slot is
    free at once (or the limit does not exist)."""
    response = await aacquire_concurrency_slots_with_lease(
        names=[name], slots=1, max_retries=0, lease_duration=lease_duration_s, strict=True
    )
    lease_id = response.lease_id
    note = _note(lease_id, name)
    try:
        async with _renewed(lease_id, lease_duration_s, name):
            yield
    finally:
        try:
            async with get_client() as client:
                await client.release_concurrency_slots_with_lease(lease_id=lease_id)
            # Given back: Prefect's run context would otherwise release it again when the
            # task ends, through a new sync client (a TLS context and a request per render).
            if (context := ConcurrencyContext.get()) and lease_id in context.cleanup_lease_ids:
                context.cleanup_lease_ids.remove(lease_id)
        except Exception as exc:  # noqa: BLE001 - the render's own outcome (or ComfyUISlotLost) stands
            logger.warning(
                "the slot of %s was not given back (%s): it frees itself when its lease "
                "expires, within %g s",
                name,
                exc,
                lease_duration_s,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                note.unlink()


RENEW_AT = 0.75  # of the lease's duration
RENEW_TRIES = 3


class ComfyUISlotLost(RuntimeError):
    """The slot's lease could not be renewed: the server may give it to another render."""


@contextlib.asynccontextmanager
async def _renewed(lease_id: uuid.UUID, duration_s: float, name: str) -> AsyncIterator[None]:
    """Renew the lease while the block runs, on this loop's own Prefect client. A render
    shorter than `RENEW_AT` of the lease renews nothing. (Prefect's `amaintain_concurrency_
    lease` starts a thread with a new sync client and renews at once: per render, a TLS
    context, a thread and a request that a short render never needs.) When renewal fails,
    the block is cancelled and `ComfyUISlotLost` raised: holding on would oversubscribe."""
    holder = asyncio.current_task()
    lost: list[BaseException] = []

    async def renew() -> None:
        async with get_client() as client:
            while True:
                await asyncio.sleep(duration_s * RENEW_AT)
                for attempt in range(RENEW_TRIES):
                    try:
                        await client.renew_concurrency_lease(lease_id, duration_s)
                        break
                    except Exception as exc:
                        if attempt == RENEW_TRIES - 1:
                            lost.append(exc)
                            if holder is not None:
                                holder.cancel()
                            return
                        await asyncio.sleep(min(2.0**attempt, duration_s * (1 - RENEW_AT) / 3))

    renewer = asyncio.create_task(renew())
    try:
        yield
    except asyncio.CancelledError:
        if lost:
            if holder is not None:
                holder.uncancel()  # the cancel was ours: it ends here, as this error
            raise ComfyUISlotLost(
                f"the lease on a slot of {name} could not be renewed ({lost[0]}); the render "
                "was stopped so that the server's slots are not oversubscribed"
            ) from lost[0]
        raise
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


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
