"""Server faults met by `render_on`: an outage within the block's window is waited out, a
longer one is one clear error, and a prompt that finished is downloaded again (a cut
download, a restart that lost ComfyUI's history), never rendered again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.comfyui import (
    ComfyUIExecutionError,
    ComfyUIOutage,
    ComfyUIPool,
    ComfyUIPromptConflict,
    ComfyUIServer,
    FinishedPrompt,
    ensure_concurrency_limits,
    output_prefix,
    prompt_id_for,
    release_dead_leases,
    render_on,
    retry_transient_only,
)
from blocks.comfyui.leases import lease_dir
from tests.comfyui.helpers import basic_graph, block_for
from tests.comfyui_server import ComfyUITestServer
from tests.comfyui_server.state import ExecutionFault
from tests.conftest import REPO
from workflows import canonical_json, render_template


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_outage_shorter_than_the_window_is_waited_out(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.4) as comfy:
        # The server dies mid-render and refuses connections for 1.5 s: longer than the
        # three quick task retries of old, well within the block's window.
        comfy.faults.restart_at_tick = 3
        comfy.faults.restart_downtime_s = 1.5
        run = await render_on(
            block_for(comfy, unreachable_grace_s=30.0),
            basic_graph(),
            prompt_id_for("outage", 1),
            tmp_path / "out",
        )
        assert run.result.status == "success" and run.files[0].path.is_file()
        # The prompt the restart lost was submitted once more, under the same id.
        assert run.timings.resubmitted == 1
        assert run.timings.outage_s > 0
        stats = comfy.stats
        assert (stats.restarts, stats.prompts_accepted, stats.prompts_completed) == (1, 2, 1)


async def test_an_outage_longer_than_the_window_is_one_clear_error(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.4) as comfy:
        comfy.faults.restart_at_tick = 2
        comfy.faults.restart_downtime_s = 4.0
        with pytest.raises(ComfyUIOutage, match="longer than its outage window of 1 s") as err:
            await render_on(
                block_for(comfy, unreachable_grace_s=1.0),
                basic_graph(),
                prompt_id_for("long-outage", 1),
                tmp_path / "out",
            )
        assert comfy.url in str(err.value)

        class Failed:
            data = err.value

        # The window was the retry: a task retry would wait it out all over again.
        assert await retry_transient_only(None, None, Failed()) is False


async def test_a_cut_download_is_fetched_again_not_rendered_again(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.1) as comfy:
        comfy.faults.cut_next_view = True  # the server dies halfway through the download
        run = await render_on(
            block_for(comfy), basic_graph(), prompt_id_for("cut-download", 1), tmp_path / "out"
        )
        assert comfy.stats.prompts_executed == 1
        served = comfy.output_files()
        assert len(served) == 1 and run.files[0].sha256 == _sha(served[0])
        assert run.files[0].size == served[0].stat().st_size


async def test_a_finished_prompt_is_downloaded_after_a_restart_lost_its_history(
    tmp_path: Path,
) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.1) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for("recorded", 1)
        seen: list[FinishedPrompt] = []

        async def note(server: str, result) -> None:
            seen.append(FinishedPrompt(server=server, outputs=result.outputs))

        first = await render_on(
            block, basic_graph(), prompt_id, tmp_path / "first", on_finished=note
        )
        comfy.restart()  # ComfyUI's history is gone; its output folder is not
        assert comfy.history() == {}

        again = await render_on(
            block, basic_graph(), prompt_id, tmp_path / "again", finished=seen[0]
        )
        assert again.recovered and comfy.stats.prompts_executed == 1
        assert [f.sha256 for f in again.files] == [f.sha256 for f in first.files]


async def test_a_finished_prompt_nobody_recorded_is_found_by_name_after_a_restart(
    tmp_path: Path,
) -> None:
    """The server finished the prompt and restarted before any run read its history: its
    files (PNG frames and the animated WEBP), under the prefix naming the prompt, are found,
    verified and downloaded."""
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.05) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for("unrecorded", 1)
        prefix = output_prefix("anime/demo/cut01-a01", prompt_id)
        params = {"seed": 3, "width": 32, "height": 32, "frames": 2, "filename_prefix": prefix}
        graph = json.loads(canonical_json(render_template("preview", params)))
        first = await render_on(block, graph, prompt_id, tmp_path / "first")
        comfy.restart()  # queue and history gone, nothing recorded; the output folder stays
        again = await render_on(block, graph, prompt_id, tmp_path / "again")
        assert again.recovered and comfy.stats.prompts_executed == 1
        tag = f"cut01-a01-{prompt_id[:8]}"
        found = {f.output.filename: f.sha256 for f in again.files}
        assert found == {f.output.filename: f.sha256 for f in first.files}
        assert set(found) == {
            f"{tag}_frame_00001_.png", f"{tag}_frame_00002_.png", f"{tag}_clip_00001_.webp"
        }
        assert {f.output.subfolder for f in again.files} == {"anime/demo"}


@pytest.mark.parametrize("damage", ["another graph's file", "second image gone"])
async def test_files_under_the_name_that_are_not_this_renders_are_rendered_again(
    tmp_path: Path, damage: str
) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.05) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for(f"damaged {damage}", 1)
        graph = basic_graph(batch=2, prefix=output_prefix("anime/demo/cut02-a01", prompt_id))
        first = await render_on(block, graph, prompt_id, tmp_path / "first")
        served = {p.name: p for p in comfy.output_files()}
        second = served[first.files[1].output.filename]
        if damage == "second image gone":
            second.unlink()
        else:  # the same name, saved by another graph (another database, a changed template)
            other = await render_on(
                block, basic_graph(batch=2, color=0x445566), prompt_id_for("other", 1),
                tmp_path / "other",
            )  # fmt: skip
            second.write_bytes(other.files[1].path.read_bytes())
        comfy.restart()
        again = await render_on(block, graph, prompt_id, tmp_path / "again")
        rendered = 2 if damage == "second image gone" else 3
        assert not again.recovered and comfy.stats.prompts_executed == rendered
        # Rendered anew: ComfyUI's counter goes on after the highest file under the prefix.
        start = 2 if damage == "second image gone" else 3
        assert [f.output.filename for f in again.files] == [
            f"cut02-a01-{prompt_id[:8]}_{n:05}_.png" for n in (start, start + 1)
        ]
        # What was downloaded to be verified and then refused is not left behind.
        assert not (tmp_path / "again" / "anime/demo" / first.files[0].output.filename).exists()
        if damage == "second image gone":
            # Now 00001 is the first render's, 00002-00003 the second's: a prefix that saw
            # two renders is not taken (00001 + 00002 would be two first images).
            comfy.restart()
            third = await render_on(block, graph, prompt_id, tmp_path / "third")
            assert not third.recovered and comfy.stats.prompts_executed == 3


async def test_recorded_outputs_that_differ_are_rendered_again(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.1) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for("changed", 1)
        first = await render_on(block, basic_graph(), prompt_id, tmp_path / "first")
        comfy.restart()
        finished = FinishedPrompt(
            server=comfy.url,
            outputs=first.result.outputs,
            sha256={first.files[0].output.filename: "0" * 64},  # not what the server has
        )
        again = await render_on(
            block, basic_graph(), prompt_id, tmp_path / "again", finished=finished
        )
        assert not again.recovered and comfy.stats.prompts_executed == 2


async def test_a_prompt_that_failed_in_an_earlier_run_is_rendered_again_once_fixed(
    tmp_path: Path,
) -> None:
    """A studio's first week: a render fails (a model file missing), the file is put in
    place, the run is started again. ComfyUI still holds the failed prompt under the job's
    id: it is submitted anew, not re-attached to (which reported the old error forever)."""
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.05) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for("fixed-later", 1)
        comfy.faults.execution_error = ExecutionFault(message="model file missing")
        with pytest.raises(ComfyUIExecutionError, match="model file missing"):
            await render_on(block, basic_graph(), prompt_id, tmp_path / "first")
        comfy.faults.execution_error = None
        again = await render_on(block, basic_graph(), prompt_id, tmp_path / "again")
        assert comfy.stats.prompts_executed == 2 and not again.recovered
        assert again.result.status == "success" and again.files
        assert comfy.history()[prompt_id]["status"]["status_str"] == "success"


async def test_a_prompt_id_holding_another_graph_is_never_taken_for_this_render(
    tmp_path: Path,
) -> None:
    """A finished prompt of another graph under the id (a template changed since a crashed
    run, a restored copy of the database): rendered anew, its outputs not taken for this
    render's. One still running with another graph: refused, naming both graphs."""
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.05) as comfy:
        block = block_for(comfy)
        prompt_id = prompt_id_for("changed-graph", 1)
        theirs = await render_on(block, basic_graph(color=0x000000), prompt_id, tmp_path / "a")
        ours = await render_on(block, basic_graph(color=0xFFFFFF), prompt_id, tmp_path / "b")
        assert comfy.stats.prompts_executed == 2
        assert ours.files[0].sha256 != theirs.files[0].sha256

    with ComfyUITestServer(tmp_path / "d", render_time_s=5.0) as comfy:
        block = block_for(comfy)
        running = asyncio.create_task(
            render_on(block, basic_graph(color=0x000000), prompt_id, tmp_path / "c")
        )
        while not comfy.in_flight:
            await asyncio.sleep(0.02)
        with pytest.raises(ComfyUIPromptConflict, match="another graph") as refused:
            await render_on(block, basic_graph(color=0xFFFFFF), prompt_id, tmp_path / "e")
        assert refused.value.prompt_id == prompt_id
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_prompt_running_again_elsewhere_is_found_before_its_failed_try(
    tmp_path: Path,
) -> None:
    """Server A holds an earlier run's failed try of the prompt, B renders it again: a cancel
    (or a timeout's withdrawal) through the pool reaches B's render, not A's old failure."""
    with (
        ComfyUITestServer(tmp_path / "a", render_time_s=0.05) as a,
        ComfyUITestServer(tmp_path / "b", render_time_s=10.0) as b,
    ):
        prompt_id = prompt_id_for("moved", 1)
        a.faults.execution_error = ExecutionFault(message="out of memory")
        with pytest.raises(ComfyUIExecutionError):
            await render_on(block_for(a), basic_graph(), prompt_id, tmp_path / "first")
        await block_for(b).get_client().submit(basic_graph(), prompt_id)
        while not b.in_flight:
            await asyncio.sleep(0.02)
        pool = ComfyUIPool([block_for(a), block_for(b)], health_check=False)
        assert (await pool.locate(prompt_id)).base_url == b.url
        assert await pool.cancel(prompt_id) == "interrupted"


_HOLD_A_SLOT = """
import asyncio, sys
from blocks.comfyui import ComfyUIServer, ComfyUIPool
async def main():
    pool = ComfyUIPool([ComfyUIServer(base_url=sys.argv[1], concurrency_limit_name=sys.argv[2])],
                       health_check=False, lease_duration_s=600)
    async with pool.slot():
        print("held", flush=True)
        await asyncio.sleep(600)
asyncio.run(main())
"""


@pytest.mark.usefixtures("prefect_harness")
async def test_slots_of_a_killed_process_are_given_back_at_once(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    name = f"leases-{uuid.uuid4().hex[:8]}"
    block = ComfyUIServer(base_url="http://127.0.0.1:9", slots=2, concurrency_limit_name=name)
    await ensure_concurrency_limits([block])
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_SLOT, block.base_url, name],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert any(lease_dir().glob("*.json"))
        assert await release_dead_leases() == []  # alive: its slot stays taken
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        async with get_client() as client:
            before = (await client.read_global_concurrency_limit_by_name(name)).active_slots
        assert before == 1  # Prefect would keep it for the lease's 600 s
        assert await release_dead_leases() == [name]
        async with get_client() as client:
            after = (await client.read_global_concurrency_limit_by_name(name)).active_slots
        assert after == 0
        assert await release_dead_leases() == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


async def test_a_cancelled_render_withdraws_its_prompt_from_the_server(tmp_path: Path) -> None:
    import asyncio

    with ComfyUITestServer(tmp_path / "c", render_time_s=5.0, progress_steps=50) as comfy:
        render = asyncio.create_task(
            render_on(block_for(comfy), basic_graph(), prompt_id_for("withdrawn", 1), tmp_path)
        )
        while comfy.stats.prompts_executed == 0:
            await asyncio.sleep(0.05)
        render.cancel()  # what a Prefect cancellation of the run does to its tasks
        with pytest.raises(asyncio.CancelledError):
            await render
        assert comfy.stats.interrupts == 1
        comfy.wait_idle(timeout=5)
        assert comfy.stats.prompts_completed == 1  # interrupted, not rendered to its end
        assert not comfy.output_files()
