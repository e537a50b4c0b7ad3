"""After a crash: nothing stays `running`, and no dead process keeps a ComfyUI slot.

A job run records the process that took its job up (host, pid, the process's start time).
`recover_crashed` (at the start of every episode run, and `anime doctor`) finds the runs
whose process on this machine is gone: their jobs become errors that say so (a re-run
renders them again), their Prefect flow runs and those flow runs' parents and children
that are still RUNNING or PENDING become Crashed with the reason, and the dead processes'
ComfyUI slot leases are given back. A run of another machine is judged by its process's
heartbeat (tasks/heartbeat.py): crashed once the process has been silent for SILENT_CRASHED_S;
a live process beats every few seconds, so its runs are left alone. (That machine's slot
leases are its own: they are given back there, or expire.)
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from blocks.comfyui.leases import process_alive, process_started, release_dead_leases
from db import heartbeats as db_heartbeats
from db import jobs as db_jobs
from db.jobs import RunProcess
from tasks.heartbeat import SILENT_CRASHED_S
from tasks.production import in_session

_OPEN = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED]


_me: RunProcess | None = None


def this_process() -> RunProcess:
    """This process: its start time read from /proc once, not on every job it takes up (a
    forked child has another pid and reads its own)."""
    global _me
    pid = os.getpid()
    if _me is None or _me.pid != pid:
        _me = RunProcess(host=socket.gethostname(), pid=pid, started=process_started(pid))
    return _me


def _alive(session, host: str, pid: int | None, started: str | None) -> bool | None:
    """Whether the process lives; None when that cannot be told. On this machine, by its pid
    and start time; on another, by its heartbeat: dead once silent for SILENT_CRASHED_S (a
    process that never beat, of a version without heartbeats, is left alone)."""
    if pid is None:
        return None
    if host == socket.gethostname():
        return process_alive(pid, started)
    silent = db_heartbeats.silent_for(session, host, pid, started)
    return None if silent is None else silent < SILENT_CRASHED_S


@dataclass
class Recovery:
    crashed_jobs: list[int] = field(default_factory=list)
    crashed_flow_runs: list[str] = field(default_factory=list)
    released_slots: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{len(self.crashed_jobs)} job(s) and {len(self.crashed_flow_runs)} flow run(s) "
            f"marked crashed, {len(self.released_slots)} ComfyUI slot(s) given back"
        )


def _crash_dead_runs(session) -> tuple[list[int], set[str]]:
    me = this_process()
    jobs: list[int] = []
    flow_runs: set[str] = set()
    for run in db_jobs.running_job_runs(session):
        alive = _alive(session, run.host, run.pid, run.process_started)
        if alive is not False or (run.host == me.host and run.pid == me.pid):
            continue
        how = (
            "died"
            if run.host == me.host
            else f"fell silent (no heartbeat for {SILENT_CRASHED_S:g} s)"
        )
        reason = f"its process {run.pid} on {run.host} {how} while it ran (job run {run.number})"
        db_jobs.mark_crashed(session, run.job_id, reason)
        jobs.append(run.job_id)
        if run.prefect_flow_run_id:
            flow_runs.add(run.prefect_flow_run_id)
    return jobs, flow_runs


async def recover_crashed() -> Recovery:
    """Mark what dead processes (of this machine, or silent ones of others) left running as
    crashed; idempotent."""
    jobs, flow_runs = await in_session(_crash_dead_runs)
    recovery = Recovery(crashed_jobs=jobs)
    if flow_runs:
        recovery.crashed_flow_runs = await _crash_flow_runs(flow_runs)
    recovery.released_slots = await release_dead_leases()
    return recovery


async def _crash_flow_runs(flow_run_ids: set[str]) -> list[str]:
    """The dead processes' flow runs, up to their root and down to every open child."""
    async with get_client() as client:
        roots: set[uuid.UUID] = set()
        for raw in flow_run_ids:
            run = await client.read_flow_run(uuid.UUID(raw))
            while run.parent_task_run_id is not None:
                parent_task = await client.read_task_run(run.parent_task_run_id)
                if parent_task.flow_run_id is None:
                    break
                run = await client.read_flow_run(parent_task.flow_run_id)
            roots.add(run.id)
        family: list = []
        frontier = list(roots)
        for root in roots:
            family.append(await client.read_flow_run(root))
        while frontier:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)
                )
            )
            family += children
            frontier = [c.id for c in children]
        crashed: list[str] = []
        for run in family:
            if run.state is None or run.state.type not in _OPEN:
                continue
            await client.set_flow_run_state(
                run.id,
                Crashed(message="its process died while it ran (marked by recover_crashed)"),
                force=True,
            )
            crashed.append(str(run.id))
        return crashed


@task(name="recover-crashed", cache_policy=NO_CACHE)
async def recover_crashed_runs() -> Recovery:
    """`recover_crashed` at the start of a run, said in its log when it found anything."""
    recovery = await recover_crashed()
    if recovery.crashed_jobs or recovery.crashed_flow_runs or recovery.released_slots:
        get_run_logger().warning("after a crash: %s", recovery.describe())
    return recovery


__all__ = ["Recovery", "recover_crashed", "recover_crashed_runs", "this_process"]
