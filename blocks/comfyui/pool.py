"""Several ComfyUI servers, each with its slots enforced by a Prefect global concurrency limit.

A slot is a lease on the server's limit (`comfyui:<host:port>`, limit = `slots`), taken with
`prefect.concurrency.asyncio.concurrency(..., strict=True)`: every process and machine that
renders sees the same count, and a limit that was never created is an error instead of a
silent free-for-all. Create the limits at start-up with `ensure_concurrency_limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

from blocks.comfyui.errors import (
    ComfyUIConcurrencyLimitMissing,
    ComfyUIOutage,
    ComfyUIPoolBusy,
    ComfyUITransientError,
    ComfyUIUnavailable,
)
from blocks.comfyui.leases import SlotLease
from blocks.comfyui.models import ProgressEvent, PromptResult
from blocks.comfyui.server import ComfyUIServer, find_server
from blocks.loop_local import loop_local

logger = logging.getLogger("blocks.comfyui.pool")
_PAGE = 200  # the Prefect API's largest page of concurrency limits


async def ensure_concurrency_limits(servers: Sequence[ComfyUIServer]) -> dict[str, int]:
    """Create or update one global concurrency limit per server (limit = its slots).
    Run it when a worker or deployment starts; idempotent."""
    wanted: dict[str, int] = {}
    for server in servers:
        name = server.concurrency_limit
        if name in wanted and wanted[name] != server.slots:
            raise ValueError(
                f"two ComfyUI server blocks share the concurrency limit {name!r} with different "
                f"slots ({wanted[name]} and {server.slots}); give them the same slots"
            )
        wanted[name] = server.slots
    async with get_client() as client:
        await asyncio.gather(
            *(client.upsert_global_concurrency_limit_by_name(n, s) for n, s in wanted.items())
        )
    for name, slots in wanted.items():
        logger.info("concurrency limit %s = %d slot(s)", name, slots)
    return wanted


def _choice_lock() -> asyncio.Lock:
    """One lock per event loop: pools in one process choose and acquire one at a time."""
    return loop_local("comfyui-pool-choice", asyncio.Lock)


class _Waiter:
    """A render of this loop waiting for a slot of one of `names`, from its first try that
    found none until it holds one. A render that ends hands its slot's lease to the first
    waiter for that server (`_hand_over`); a slot given back wakes every waiter to try again
    at once instead of at its next poll, so the hand-over between two renders of one process
    costs a few milliseconds, not half a poll interval (slots freed by other processes are
    still seen by polling). A waiter stays registered while it polls, so a hand-over meant
    for it is not missed in between."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.lease: SlotLease | None = None
        self._woken = asyncio.Event()
        waiting = _waiting()
        for name in self.names:
            waiting.setdefault(name, []).append(self)

    def offer(self, lease: SlotLease) -> bool:
        if self.lease is not None:
            return False
        self.lease = lease
        self._woken.set()
        return True

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, timeout_s: float) -> bool:
        """Until woken or `timeout_s`; whether it was woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout_s)
        woken = self._woken.is_set()
        self._woken.clear()
        return woken

    def take(self) -> SlotLease | None:
        lease, self.lease = self.lease, None
        return lease

    async def leave(self) -> None:
        """No longer waiting; a lease handed over meanwhile goes to the next waiter, or
        back to Prefect."""
        waiting = _waiting()
        for name in self.names:
            waiting[name].remove(self)
        if (lease := self.take()) is not None and not _hand_over(lease):
            await asyncio.shield(_give_back(lease))


def _waiting() -> dict[str, list[_Waiter]]:
    """This loop's waiters, by limit name, in the order they came."""
    return loop_local("comfyui-pool-waiting", dict)


def _hand_over(lease: SlotLease) -> bool:
    """Give the lease to the first render of this loop waiting for its server."""
    for waiter in _waiting().get(lease.name, ()):
        if waiter.offer(lease):
            lease.pass_on()
            return True
    return False


def _announce_release() -> None:
    for waiters in _waiting().values():
        for waiter in waiters:
            waiter.wake()


class _Parked:
    """Leases this loop's renders gave back while others still rendered (or while a run of
    this loop still has renders to come, `slots_kept_for_run`), kept for the next render of
    this loop for up to `linger_s` each, then given back to Prefect; all of them at once when
    the loop's last render ends outside such a run, or the run ends (so none outlives the
    run that parked it)."""

    def __init__(self) -> None:
        self.leases: dict[str, list[SlotLease]] = {}
        self.active = 0  # renders of this loop inside `ComfyUIPool.slot`
        self.runs = 0  # runs of this loop inside `slots_kept_for_run`
        self._timers: dict[SlotLease, asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()

    def park(self, lease: SlotLease, linger_s: float) -> None:
        self.leases.setdefault(lease.name, []).append(lease)
        self._timers[lease] = asyncio.get_running_loop().call_later(linger_s, self._expire, lease)

    def unpark(self, names: Sequence[str]) -> SlotLease | None:
        for name in names:
            if parked := self.leases.get(name):
                lease = parked.pop(0)
                self._timers.pop(lease).cancel()  # parked again later: a new timer
                return lease
        return None

    def _expire(self, lease: SlotLease) -> None:
        self.leases[lease.name].remove(lease)
        del self._timers[lease]
        task = asyncio.ensure_future(_give_back(lease))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    @property
    def keeping(self) -> bool:
        """A slot given back now may be wanted soon by a render of this loop."""
        return self.runs > 0 or self.active > 1

    async def give_back_all(self) -> None:
        leases = [lease for parked in self.leases.values() for lease in parked]
        self.leases.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await asyncio.gather(*(_give_back(lease) for lease in leases))
        await asyncio.gather(*self._expiring, return_exceptions=True)


def _parked() -> _Parked:
    return loop_local("comfyui-pool-parked", _Parked)


@contextlib.asynccontextmanager
async def slots_kept_for_run() -> AsyncIterator[None]:
    """While inside, a slot that this loop's only render gives back is parked for the next
    one (`linger_s`), as one given back while others render is: a run that renders cut after
    cut has moments with no render under way (a phase's end, cuts that wait on the
    orchestrator), and each gave every slot back to Prefect to take again, with its health
    check, a moment later. On leaving, every parked slot goes back."""
    parked = _parked()
    parked.runs += 1
    try:
        yield
    finally:
        parked.runs -= 1
        if parked.runs == 0 and parked.active == 0:
            await asyncio.shield(parked.give_back_all())


async def _give_back(lease: SlotLease) -> None:
    await lease.give_back()
    _announce_release()  # the slot is free: wake this loop's waiters


def _missing(name: str) -> ComfyUIConcurrencyLimitMissing:
    return ComfyUIConcurrencyLimitMissing(
        f"the Prefect global concurrency limit {name!r} of this ComfyUI server does not "
        "exist (slots are never skipped): `anime comfyui add NAME URL` creates it"
    )


class ComfyUIPool:
    """Chooses a server with a free slot (least busy first) and holds the slot while the
    caller renders on it.

    `lease_duration_s`: how long a crashed holder keeps its slot before Prefect frees it.
    `acquire_timeout_s`: give up with `ComfyUIPoolBusy` after that long (None: wait).
    `hand_over_s`: a slot passes from one render of this process straight to the next that
    waits for that server (no request to Prefect, no health check) for that long after it was
    taken; then it goes back, and other processes' renders may take it. `linger_s`: a slot
    no render of this process waits for yet, while others of this process still render (or
    its run has renders to come, `slots_kept_for_run`), is kept that long for the next one,
    then given back (at once when the process's last render, or its run, ends). 10 s: at
    2 s, an episode's slots went back and were taken again once every 6 cuts, each time
    three requests to Prefect and a health check; an idle slot kept that long from another
    process is within the `hand_over_s` a busy one is kept. `retry_interval_s`,
    `max_retry_interval_s`: a render that found no free slot looks again (one request to
    Prefect for every server's limit) after `retry_interval_s`, each further look that finds
    none after twice the pause before, up to `max_retry_interval_s` (each +-50%, so that
    waiting renders spread out); a slot given back in this process wakes it at once, so the
    looks are only for slots freed by other processes and machines, and meanwhile the prompt
    waiting in the server's own queue (its second slot) keeps its GPU busy. A look every
    0.5 s for as long as a render waited was 3.8 requests a cut at 10 s renders (N = 24,
    K = 4), 1.9 with the pauses doubling; the longer the renders, the more that saves.
    """

    def __init__(
        self,
        servers: Sequence[ComfyUIServer],
        *,
        lease_duration_s: float = 60.0,
        retry_interval_s: float = 0.5,
        max_retry_interval_s: float = 2.0,
        acquire_timeout_s: float | None = None,
        health_check: bool = True,
        down_for_s: float = 30.0,
        hand_over_s: float = 60.0,
        linger_s: float = 10.0,
    ) -> None:
        if not servers:
            raise ValueError("a ComfyUI pool needs at least one server")
        self.servers = list(servers)
        self.lease_duration_s = lease_duration_s
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max(max_retry_interval_s, retry_interval_s)
        self.acquire_timeout_s = acquire_timeout_s
        self.health_check = health_check
        self.down_for_s = down_for_s
        self.hand_over_s = hand_over_s
        self.linger_s = linger_s
        self._held: dict[str, int] = {s.concurrency_limit: 0 for s in self.servers}
        self._down_until: dict[str, float] = {}

    @classmethod
    async def load(cls, names_or_urls: Sequence[str], **options: Any) -> ComfyUIPool:
        """Servers by block name or URL (`find_server`)."""
        # Side by side: one block read each, four one after another were most of the time a
        # run took to set up before its first cut.
        servers = await asyncio.gather(*(find_server(name) for name in names_or_urls))
        return cls(list(servers), **options)

    async def ensure_limits(self) -> dict[str, int]:
        return await ensure_concurrency_limits(self.servers)

    async def locate(self, prompt_id: str) -> ComfyUIServer | None:
        """The server that already has this prompt (queued, running or finished), if any:
        a retry must go back there instead of rendering again somewhere else. One where it
        waits or runs comes first: another may still hold an earlier run's failed try of it."""

        async def where(server: ComfyUIServer) -> tuple[bool, ComfyUIServer] | None:
            try:
                state = await server.get_client().lookup(prompt_id)
            except ComfyUITransientError:
                return None
            return None if state.phase == "absent" else (state.phase == "done", server)

        found = [f for f in await asyncio.gather(*(where(s) for s in self.servers)) if f]
        return min(found, key=lambda f: f[0])[1] if found else None

    async def wait_until_up(
        self, servers: Sequence[ComfyUIServer], down_since: float, cause: str
    ) -> ComfyUIServer:
        """Poll the servers' health until one answers, and forget that it was found down;
        `ComfyUIOutage` once the outage (since `down_since`, monotonic) outlasts the window
        of every one of them (`unreachable_grace_s`)."""
        window = max(s.unreachable_grace_s for s in servers)
        interval = min(max(min(s.poll_interval_s for s in servers), 0.2), 2.0)
        logged = False
        while True:
            reports = await asyncio.gather(*(s.get_client().health() for s in servers))
            for server, report in zip(servers, reports, strict=True):
                if report.ok:
                    self._down_until.pop(server.concurrency_limit, None)
                    if logged:
                        logger.warning(
                            "ComfyUI %s is back after %.1f s",
                            server.base_url,
                            time.monotonic() - down_since,
                        )
                    return server
            waited = time.monotonic() - down_since
            if waited >= window:
                raise ComfyUIOutage(
                    f"ComfyUI {', '.join(s.base_url for s in servers)} unreachable for "
                    f"{waited:.0f} s, longer than its outage window of {window:g} s "
                    f"(the block's unreachable_grace_s); first failure: {cause}"
                )
            if not logged:
                logger.warning(
                    "ComfyUI %s is unreachable (%s); waiting up to %g s for it to come back",
                    ", ".join(s.base_url for s in servers),
                    cause,
                    window,
                )
                logged = True
            await asyncio.sleep(interval)

    async def _free_slots(self, servers: Sequence[ComfyUIServer]) -> dict[str, float]:
        """Free slots per limit, as a fraction of the limit (1.0 = idle, 0 = full)."""
        free: dict[str, float] = {}
        names = {server.concurrency_limit for server in servers}
        limits, offset = [], 0
        async with get_client() as client:  # one request for every server's limit
            while True:
                page = await client.read_global_concurrency_limits(_PAGE, offset)
                limits += page
                offset += len(page)
                if len(page) < _PAGE or names <= {lim.name for lim in limits}:
                    break
        for limit in limits:
            if limit.name in names:
                open_slots = limit.limit - limit.active_slots
                share = open_slots / limit.limit if limit.limit and open_slots > 0 else 0.0
                free[limit.name] = share
        if missing := sorted(names - free.keys()):
            raise _missing(missing[0])
        return free

    async def _try_acquire(self, server: ComfyUIServer) -> SlotLease | None:
        name = server.concurrency_limit
        try:
            return await SlotLease.take(name, self.lease_duration_s)
        except ConcurrencySlotAcquisitionError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423:
                return None  # another process took the last slot first
            if "must be created" in str(exc):
                raise _missing(name) from None
            raise

    async def _acquire_one(
        self, candidates: Sequence[ComfyUIServer]
    ) -> tuple[ComfyUIServer, SlotLease] | None:
        # Only servers whose limit shows a free slot are tried: a refused try costs an
        # error line in Prefect's log, so contention is resolved by waiting, not by trying.
        async with _choice_lock():
            free = await self._free_slots(candidates)
            order = {s.concurrency_limit: i for i, s in enumerate(candidates)}
            ranked = sorted(
                (s for s in candidates if free[s.concurrency_limit] > 0),
                key=lambda s: (
                    -free[s.concurrency_limit],
                    self._held[s.concurrency_limit],
                    order[s.concurrency_limit],
                ),
            )
            for server in ranked:
                if self._down_until.get(server.concurrency_limit, 0.0) > time.monotonic():
                    continue
                if (lease := await self._try_acquire(server)) is not None:
                    return server, lease
        return None

    def _keep(self, lease: SlotLease) -> bool:
        """A lease younger than `hand_over_s` goes to the next render of this process that
        waits for its server, without a request; or, while other renders of this process
        are under way, it is parked for the next one to come (`linger_s`). An older one goes
        back to Prefect, so that the renders of other processes and machines get their
        turn."""
        if time.monotonic() - lease.taken_at >= self.hand_over_s:
            return False
        if _hand_over(lease):
            return True
        parked = _parked()
        if self.linger_s > 0 and parked.keeping:
            lease.pass_on()
            parked.park(lease, self.linger_s)
            return True
        return False

    @contextlib.asynccontextmanager
    async def slot(self, prefer: ComfyUIServer | None = None) -> AsyncIterator[ComfyUIServer]:
        """Hold one slot of the least busy server (or of `prefer`) for the block's duration."""
        loop = asyncio.get_running_loop()
        deadline = None if self.acquire_timeout_s is None else loop.time() + self.acquire_timeout_s
        candidates = [prefer] if prefer is not None else self.servers
        by_name = {s.concurrency_limit: s for s in candidates}
        waiter: _Waiter | None = None
        pause = self.retry_interval_s
        parked = _parked()
        parked.active += 1
        try:
            while True:
                handed = waiter.take() if waiter is not None else parked.unpark(list(by_name))
                if handed is None:
                    now = time.monotonic()
                    if all(
                        self._down_until.get(s.concurrency_limit, 0.0) > now for s in candidates
                    ):
                        raise ComfyUIUnavailable(
                            "every ComfyUI server this render may use failed its health check: "
                            + ", ".join(s.base_url for s in candidates)
                        )
                    acquired = await self._acquire_one(candidates)
                    if acquired is None:
                        if deadline is not None and loop.time() >= deadline:
                            raise ComfyUIPoolBusy(
                                f"no ComfyUI slot free within {self.acquire_timeout_s:g} s "
                                f"({', '.join(by_name)})"
                            )
                        waiter = waiter or _Waiter(list(by_name))
                        woken = await waiter.wait(pause * (0.5 + random.random()))
                        # Woken: a slot of this process moved, look at once and from the
                        # start again; a look that found none: the next one later.
                        pause = (
                            self.retry_interval_s
                            if woken
                            else min(2 * pause, self.max_retry_interval_s)
                        )
                        continue
                    server, lease = acquired
                    checked = not self.health_check
                else:
                    # A render on this server ended well just now: no health check.
                    server, lease, checked = by_name[handed.name], handed, True
                if waiter is not None:
                    waiter, leaving = None, waiter
                    await leaving.leave()
                name = server.concurrency_limit
                kept = False
                try:
                    if not checked:
                        report = await server.get_client().health()
                        if not report.ok:
                            logger.warning(
                                "ComfyUI %s is unhealthy (%s); trying another",
                                server.base_url,
                                report.error,
                            )
                            self._down_until[name] = time.monotonic() + self.down_for_s
                            continue
                    self._held[name] += 1
                    try:
                        async with lease.held():
                            yield server
                    finally:
                        self._held[name] -= 1
                    kept = self._keep(lease)
                    return
                finally:
                    if not kept:
                        await _give_back(lease)
        finally:
            if waiter is not None:
                await waiter.leave()
            parked.active -= 1
            if parked.active == 0 and parked.runs == 0:
                await parked.give_back_all()  # the loop's last render: nothing stays held

    async def render(
        self,
        graph: dict[str, Any],
        prompt_id: str,
        *,
        on_event: Callable[[ProgressEvent], Any] | None = None,
        extra_data: dict[str, Any] | None = None,
        new_prompt: bool = False,
        before_submit: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[ComfyUIServer, PromptResult]:
        """Render on the server that already has `prompt_id`, else on the least busy one.

        `new_prompt`: the caller knows no server can have this prompt id yet (a job created
        just now, first try), so the look-up on every server is skipped. `before_submit`:
        called once the slot is held, before submitting (raising gives the slot back).
        """
        home = None if new_prompt else await self.locate(prompt_id)
        async with self.slot(prefer=home) as server:
            if before_submit is not None:
                await before_submit()  # waiting for the slot took a while: still wanted?
            client = server.get_client()
            result = await client.render(
                graph, prompt_id, on_event=on_event, extra_data=extra_data, new_prompt=new_prompt
            )
        return server, result

    async def cancel(self, prompt_id: str) -> str:
        home = await self.locate(prompt_id)
        return "unknown" if home is None else await home.get_client().cancel(prompt_id)
