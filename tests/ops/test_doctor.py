"""`anime doctor`: what a dead process left running ends crashed, with the reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Running
from sqlalchemy import select

from db.engine import session_scope
from db.jobs import RunProcess, get_or_create_job, mark_running
from db.models import Cut, Job, JobKind, JobRunStatus, JobStatus, Phase, Project
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow(name="render-cut")
def killed_cut() -> None:
    """Stands for a cut run whose process was killed (its flow run stays RUNNING)."""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _anime(*args: str, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "PREFECT_API_URL": PREFECT_API_URL.value()}
    return subprocess.run(
        [sys.executable, "-m", "anime", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


async def test_doctor_marks_a_dead_process_jobs_and_flow_runs_crashed(production, db) -> None:
    async with get_client() as client:
        run = await client.create_flow_run(killed_cut, state=Running())
    dead = RunProcess(host=socket.gethostname(), pid=_dead_pid(), started="1")
    with session_scope() as s:
        cut = s.scalar(select(Cut).order_by(Cut.id).limit(1))
        project = s.scalar(select(Project))
        job, _ = get_or_create_job(
            s,
            project_id=project.id,
            phase=Phase.GENERATION,
            kind=JobKind.KEYFRAME,
            attempt=1,
            cut_id=cut.id,
        )
        mark_running(
            s,
            job.id,
            flow_run_id=str(run.id),
            renderer="comfyui",
            story_bible_version=1,
            process=dead,
        )
        job_id = job.id

    done = _anime("doctor", db_url=db)
    assert done.returncode == 0, done.stderr
    assert f"job {job_id}: crashed" in done.stdout
    assert f"flow run {run.id}: marked Crashed" in done.stdout
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job.status is JobStatus.ERROR and job.error.startswith("crashed: its process")
        assert job.runs[-1].status is JobRunStatus.CRASHED
    async with get_client() as client:
        state = (await client.read_flow_run(run.id)).state
    assert state is not None and state.type is StateType.CRASHED

    status = _anime("status", production, db_url=db)
    assert status.returncode == 0 and "running" not in status.stdout
    again = _anime("doctor", db_url=db)
    assert "nothing left running by a dead process" in again.stdout


def test_cancel_names_an_unknown_episode_and_says_when_nothing_runs(production, db) -> None:
    unknown = _anime("cancel", "nope", "1", db_url=db)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "no project 'nope' (projects: moonlit-courier)" in unknown.stdout + unknown.stderr
    missing = _anime("cancel", production, "9", db_url=db)
    assert missing.returncode == 1
    said = missing.stdout + missing.stderr
    assert f"project '{production}' has no episode 9 (episodes: 1" in said
    no_scene = _anime("cancel", production, "1", "--scene", "9", db_url=db)
    assert no_scene.returncode == 1 and "Traceback" not in no_scene.stderr
    assert f"{production} episode 1 has no scene 9 (scenes: 1" in no_scene.stdout + no_scene.stderr
    idle = _anime("cancel", production, "1", "--scene", "1", db_url=db)
    assert idle.returncode == 0, idle.stderr
    assert "no job was waiting or rendering" in idle.stdout
    assert f"runs under way will not submit the cuts of {production} episode 1 scene 1" in (
        idle.stdout
    )


def _database_up_s() -> float:
    from sqlalchemy import func

    with session_scope() as s:
        return s.scalar(select(func.extract("epoch", func.now() - func.pg_postmaster_start_time())))


async def test_a_run_of_another_machine_is_crashed_only_once_its_process_fell_silent(
    production, db, monkeypatch
) -> None:
    import asyncio

    from sqlalchemy import func, insert

    import tasks.recovery
    from db.models import ProcessHeartbeat
    from tasks.recovery import recover_crashed

    # Silence counts from the database's start at the latest (see the next test): a window
    # shorter than the test server has been up, so that it can be reached here.
    SILENT_CRASHED_S = 2.0
    monkeypatch.setattr(tasks.recovery, "SILENT_CRASHED_S", SILENT_CRASHED_S)
    while _database_up_s() < SILENT_CRASHED_S + 1:
        await asyncio.sleep(0.5)

    silent = RunProcess(host="render-02.studio", pid=4242, started="7")
    beating = RunProcess(host="render-03.studio", pid=4242, started="7")
    unknown = RunProcess(host="render-04.studio", pid=4242, started="7")  # never beat
    with session_scope() as s:
        cut = s.scalar(select(Cut).order_by(Cut.id).limit(1))
        project = s.scalar(select(Project))
        job_of = {}
        for attempt, process in enumerate((silent, beating, unknown), start=1):
            job, _ = get_or_create_job(
                s, project_id=project.id, phase=Phase.GENERATION, kind=JobKind.KEYFRAME,
                attempt=attempt, cut_id=cut.id,
            )  # fmt: skip
            mark_running(
                s, job.id, flow_run_id=None, renderer="comfyui", story_bible_version=1,
                process=process,
            )  # fmt: skip
            job_of[process.host] = job.id
        for process, seconds_ago in ((silent, SILENT_CRASHED_S + 60), (beating, 0)):
            s.execute(
                insert(ProcessHeartbeat).values(
                    host=process.host,
                    pid=process.pid,
                    process_started=process.started,
                    beat_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds_ago),
                )
            )

    recovery = await recover_crashed()
    assert recovery.crashed_jobs == [job_of[silent.host]]
    with session_scope() as s:
        crashed = s.get(Job, job_of[silent.host])
        assert crashed.status is JobStatus.ERROR and "render-02.studio fell silent" in crashed.error
        assert crashed.runs[-1].status is JobRunStatus.CRASHED
        for host in (beating.host, unknown.host):  # alive, or cannot be told: left running
            assert s.get(Job, job_of[host]).status is JobStatus.RUNNING


def test_silence_counts_from_the_database_start_at_the_latest(db) -> None:
    """A database that was down (restarted) could take no beats: a process of another machine
    that beat an hour before it came back is silent for as long as the database has been up,
    not an hour, so the recovery right after the restart does not call it dead before its
    next beat lands."""
    from sqlalchemy import func, insert

    from db.heartbeats import silent_for
    from db.models import ProcessHeartbeat

    with session_scope() as s:
        s.execute(
            insert(ProcessHeartbeat).values(
                host="render-06.studio", pid=4444, process_started="9",
                beat_at=func.now() - func.make_interval(0, 0, 0, 0, 1),
            )
        )  # fmt: skip
    with session_scope() as s:
        silent = silent_for(s, "render-06.studio", 4444, "9")
    assert silent is not None and silent <= _database_up_s() + 1 < 3600


def test_a_heartbeat_keeps_to_the_database_it_started_on(databases, db, monkeypatch) -> None:
    """A process that moves to another database (the test suite does, between tests) must not
    beat into it from the thread it started on the first one: a stray row there would name a
    process the second database never ran."""
    import time

    from db import migrate
    from db.models import ProcessHeartbeat
    from tasks import heartbeat

    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.05)
    process = RunProcess(host="render-05.studio", pid=4343, started=f"{time.time()}")

    def beats() -> int:
        with session_scope() as s:
            return len(s.scalars(select(ProcessHeartbeat).filter_by(host=process.host)).all())

    heartbeat.keep_beating(process)
    assert beats() == 1
    other = databases.create()
    databases.use(other)
    migrate.upgrade()
    time.sleep(0.5)  # ten beat intervals
    assert beats() == 0
    heartbeat.keep_beating(process)  # its next job, on this database: beating here from now
    assert beats() == 1
    databases.use(db)
