"""The ComfyUI client against the protocol-faithful test server: renders, failures, recovery."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image

from blocks.comfyui import (
    ComfyUICancelled,
    ComfyUIExecutionError,
    ComfyUIPromptLost,
    ComfyUIRenderTimeout,
    ComfyUITransientError,
    ComfyUIUnavailable,
    ComfyUIValidationError,
    prompt_id_for,
)
from blocks.comfyui.models import (
    NodeExecuted,
    NodeExecuting,
    NodeProgress,
    ProgressEvent,
    PromptDone,
    PromptInterrupted,
    PromptStarted,
    PromptSucceeded,
)
from tests.comfyui.helpers import basic_graph, client_for
from tests.comfyui_server import ComfyUITestServer, ExecutionFault, sample

T = TypeVar("T")


def sample_validation_body() -> dict[str, Any]:
    return sample("prompt_post_validation_errors.json")["bad_combo"]["body"]


async def _first(events: list[ProgressEvent], kind: type, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(isinstance(e, kind) for e in events):
        assert time.monotonic() < deadline, f"no {kind.__name__} within {timeout} s: {events}"
        await asyncio.sleep(0.01)


async def test_render_reports_progress_and_downloads_a_real_png(
    comfy: ComfyUITestServer, tmp_path: Path
) -> None:
    client = client_for(comfy)
    events: list[ProgressEvent] = []
    prompt_id = prompt_id_for("job-1", 1)

    result = await client.render(basic_graph(color=0x112233), prompt_id, on_event=events.append)

    kinds = [type(e) for e in events]
    assert kinds[0] is PromptStarted
    assert kinds[-2:] == [PromptSucceeded, PromptDone]
    assert [e.node for e in events if isinstance(e, NodeExecuting)] == ["1", "2", "3"]
    ticks = [e for e in events if isinstance(e, NodeProgress) and e.node == "3"]
    assert [t.fraction for t in ticks] == [0.25, 0.5, 0.75, 1.0]
    executed = [e for e in events if isinstance(e, NodeExecuted)]
    assert executed[0].files[0].filename == "probe_00001_.png"
    assert result.status == "success" and result.prompt_id == prompt_id

    [file] = await client.download_all(result, tmp_path / "out")
    data = file.path.read_bytes()
    assert file.size == len(data) and file.sha256 == hashlib.sha256(data).hexdigest()
    with Image.open(file.path) as image:
        assert image.size == (64, 48)
        assert image.getpixel((0, 0)) == (0xFF - 0x11, 0xFF - 0x22, 0xFF - 0x33)


async def test_a_render_followed_by_its_socket_never_reads_the_queue(
    comfy: ComfyUITestServer,
) -> None:
    # A new prompt (as an episode's renders are) is queued without a look first; the socket
    # says when it ends and ComfyUI has written its history entry by then, so the result
    # comes from /history alone, not from a /queue read first (a request a render fewer).
    client = client_for(comfy, poll_interval_s=5.0)
    result = await client.render(basic_graph(), "by-socket", new_prompt=True)
    assert result.status == "success"
    assert comfy.stats.queue_reads == 0


async def test_follow_after_submit_reaches_the_same_result(comfy: ComfyUITestServer) -> None:
    client = client_for(comfy)
    submission = await client.submit(basic_graph(), "plain-id")
    assert not submission.reattached
    events = [e async for e in client.follow("plain-id")]
    assert isinstance(events[-1], PromptDone)
    assert events[-1].result.outputs[0].filename == "probe_00001_.png"
    assert (await client.result("plain-id")).status == "success"


async def test_validation_error_names_node_class_input_and_reason(comfy: ComfyUITestServer) -> None:
    graph = basic_graph()
    graph["1"]["inputs"]["width"] = 0
    graph["5"] = {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["2", 0],
            "upscale_method": "magic",
            "width": 32,
            "height": 32,
            "crop": "disabled",
        },
    }
    graph["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}}

    with pytest.raises(ComfyUIValidationError) as caught:
        await client_for(comfy).submit(graph, "invalid")

    error = caught.value
    message = str(error)
    assert "node 1 (EmptyImage) input 'width': Value 0 smaller than min of 1" in message
    assert "node 5 (ImageScale) input 'upscale_method': Value not in list" in message
    assert "'magic' not in" in message
    assert "node 6 (SaveImage) input 'filename_prefix': Required input is missing" in message
    assert {(e.node_id, e.class_type, e.input_name) for e in error.node_errors} == {
        ("1", "EmptyImage", "width"),
        ("5", "ImageScale", "upscale_method"),
        ("6", "SaveImage", "filename_prefix"),
    }
    assert comfy.stats.prompts_accepted == 0


async def test_unknown_node_type_is_a_validation_error(comfy: ComfyUITestServer) -> None:
    graph = basic_graph()
    graph["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(ComfyUIValidationError, match="node NoSuchNode does not exist.*#2"):
        await client_for(comfy).submit(graph, "unknown-node")


async def test_ui_format_workflow_is_refused_before_submission(comfy: ComfyUITestServer) -> None:
    with pytest.raises(ValueError, match="UI-format"):
        await client_for(comfy).submit({"nodes": [], "links": []}, "ui-format")
    assert comfy.stats.prompts_posted == 0


async def test_execution_error_names_node_type_and_exception(comfy: ComfyUITestServer) -> None:
    graph = {
        "1": {
            "class_type": "RegexReplace",
            "inputs": {"string": "hello", "regex_pattern": "(unclosed", "replace": "x"},
        },
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    with pytest.raises(ComfyUIExecutionError) as caught:
        await client_for(comfy).render(graph, "regex-fails")
    error = caught.value
    assert (error.node_id, error.node_type, error.exception_type) == (
        "1",
        "RegexReplace",
        "re.error",
    )
    assert "node 1 (RegexReplace) failed: re.error: missing ), unterminated subpattern" in str(
        error
    )
    assert error.traceback


async def test_injected_failure_on_the_save_node(comfy: ComfyUITestServer) -> None:
    comfy.faults.execution_error = ExecutionFault(
        class_type="SaveImage",
        exception_type="torch.OutOfMemoryError",
        message="CUDA out of memory",
    )
    events: list[ProgressEvent] = []
    with pytest.raises(ComfyUIExecutionError, match=r"node 3 \(SaveImage\).*out of memory"):
        await client_for(comfy).render(basic_graph(), "oom", on_event=events.append)
    done = events[-1]
    assert isinstance(done, PromptDone) and done.result.status == "error"
    assert done.result.failure is not None and done.result.failure.node_id == "3"


async def test_cancel_interrupts_a_running_prompt(slow_comfy: ComfyUITestServer) -> None:
    client = client_for(slow_comfy)
    events: list[ProgressEvent] = []
    render = asyncio.create_task(
        client.render(basic_graph(), "to-interrupt", on_event=events.append)
    )
    await _first(events, NodeProgress)

    assert await client.cancel("to-interrupt") == "interrupted"
    started = time.monotonic()
    with pytest.raises(ComfyUICancelled, match="interrupted at node"):
        await render
    assert time.monotonic() - started < 2.0
    assert any(isinstance(e, PromptInterrupted) for e in events)
    assert slow_comfy.history()["to-interrupt"]["status"]["status_str"] == "error"


async def test_cancel_takes_a_queued_prompt_off_the_queue(slow_comfy: ComfyUITestServer) -> None:
    client = client_for(slow_comfy)
    await client.submit(basic_graph(color=1), "running-one")
    await client.submit(basic_graph(color=2), "waiting-one")
    assert (await client.lookup("waiting-one")).phase == "queued"

    assert await client.cancel("waiting-one") == "dequeued"
    with pytest.raises(ComfyUICancelled, match="taken off the queue"):
        async for _ in client.follow("waiting-one"):
            pass
    assert await client.cancel("running-one") == "interrupted"
    slow_comfy.wait_idle()
    assert slow_comfy.stats.prompts_executed == 1  # the dequeued prompt never ran
    assert "waiting-one" not in slow_comfy.history()


async def test_dropped_socket_reconnects_and_completes(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.6, progress_steps=5) as comfy:
        comfy.faults.drop_sockets_at_tick = 3
        events: list[ProgressEvent] = []
        result = await client_for(comfy, poll_interval_s=5.0).render(
            basic_graph(), "dropped", on_event=events.append
        )
        assert result.status == "success"
        assert comfy.stats.ws_connections >= 2  # same clientId, reconnected
        assert isinstance(events[-1], PromptDone)


async def test_dropped_socket_that_cannot_reconnect_completes_by_polling(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.6) as comfy:
        events: list[ProgressEvent] = []
        client = client_for(comfy, poll_interval_s=0.2)
        render = asyncio.create_task(
            client.render(basic_graph(), "no-socket", on_event=events.append)
        )
        await _first(events, NodeProgress)
        comfy.faults.refuse_sockets = True
        comfy.drop_sockets()
        result = await asyncio.wait_for(render, 5)
        assert result.status == "success"
        assert comfy.stats.ws_connections == 1
        assert comfy.stats.queue_reads >= 1  # without a socket, where it is: queue, history
        assert isinstance(events[-1], PromptDone)


async def test_stalled_socket_completes_by_polling(tmp_path: Path) -> None:
    # A socket that stays connected and says nothing is caught by the slower check that runs
    # while a socket is up (socket_poll_interval_s), not only by the render deadline.
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.3) as comfy:
        comfy.faults.stall_sockets = True
        client = client_for(comfy, poll_interval_s=5.0, socket_poll_interval_s=0.3)
        result = await asyncio.wait_for(client.render(basic_graph(), "stalled"), 4.0)
        assert result.status == "success"
        assert comfy.stats.prompts_executed == 1


async def test_stalled_render_hits_the_deadline(slow_comfy: ComfyUITestServer) -> None:
    slow_comfy.faults.stall_sockets = True
    client = client_for(
        slow_comfy, render_timeout_s=0.5, poll_interval_s=0.2, socket_poll_interval_s=0.2
    )
    started = time.monotonic()
    with pytest.raises(ComfyUIRenderTimeout) as caught:
        await client.render(basic_graph(), "too-slow")
    assert isinstance(caught.value, ComfyUITransientError)
    assert time.monotonic() - started < 2.0
    assert (await client.lookup("too-slow")).phase == "running"  # still there to re-attach to
    await client.cancel("too-slow")


async def test_queued_prompt_is_not_lost_while_waiting(slow_comfy: ComfyUITestServer) -> None:
    """`/history` answers {} for a queued prompt: the client must read that as waiting."""
    client = client_for(slow_comfy, render_timeout_s=1.0)
    await client.submit(basic_graph(color=1), "first")
    await client.submit(basic_graph(color=2), "second")
    with pytest.raises(ComfyUIRenderTimeout):
        async for _ in client.follow("second"):
            pass
    assert (await client.lookup("second")).phase == "queued"
    await client.cancel("second")
    await client.cancel("first")


async def test_restart_mid_render_is_transient_and_a_retry_succeeds(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.4) as comfy:
        comfy.faults.restart_at_tick = 3
        comfy.faults.restart_downtime_s = 0.3
        client = client_for(comfy)
        prompt_id = prompt_id_for("job-restart", 1)
        with pytest.raises(ComfyUIPromptLost) as caught:
            await client.render(basic_graph(), prompt_id)
        assert isinstance(caught.value, ComfyUITransientError)
        assert "neither the queue nor the history" in str(caught.value)

        result = await _retry_transient(lambda: client.render(basic_graph(), prompt_id))
        assert result.status == "success"
        stats = comfy.stats
        assert (stats.restarts, stats.prompts_accepted, stats.prompts_completed) == (1, 2, 1)


async def test_crashed_worker_retry_reattaches_instead_of_rendering_twice(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.8, progress_steps=8) as comfy:
        await _crash_then_retry(comfy)


async def _crash_then_retry(slow_comfy: ComfyUITestServer) -> None:
    graph = basic_graph()
    prompt_id = prompt_id_for("job-42", 1)
    events: list[ProgressEvent] = []
    crashed = asyncio.create_task(
        client_for(slow_comfy).render(graph, prompt_id, on_event=events.append)
    )
    await _first(events, NodeProgress)
    crashed.cancel()  # the worker dies; the prompt keeps running on the server
    with pytest.raises(asyncio.CancelledError):
        await crashed

    retry = client_for(slow_comfy)  # a fresh process: nothing shared but the prompt id
    submission = await retry.submit(graph, prompt_id)
    assert submission.reattached and submission.state == "running"
    result = await retry.render(graph, prompt_id)
    assert result.status == "success"
    again = await retry.submit(graph, prompt_id)
    assert again.reattached and again.state == "done"
    stats = slow_comfy.stats
    assert (stats.prompts_accepted, stats.prompts_executed) == (1, 1)


async def _retry_transient(attempt: Callable[[], Awaitable[T]], tries: int = 10) -> T:
    """What Prefect task retries do with the render task (retry_transient_only)."""
    for _ in range(tries - 1):
        try:
            return await attempt()
        except ComfyUITransientError:
            await asyncio.sleep(0.2)
    return await attempt()


def test_prompt_ids_are_deterministic_per_job_and_attempt() -> None:
    assert prompt_id_for("job-7", 1) == prompt_id_for("job-7", 1)
    assert prompt_id_for("job-7", 1) != prompt_id_for("job-7", 2)
    assert prompt_id_for("job-7", 1) != prompt_id_for("job-8", 1)


async def test_server_errors_and_dead_servers_are_transient(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c") as comfy:
        client = client_for(comfy)
        comfy.faults.fail_http_requests = 1
        with pytest.raises(ComfyUIUnavailable, match="HTTP 503"):
            await client.submit(basic_graph(), "five-oh-three")
        url = comfy.url
    dead = client_for(comfy, base_url=url, connect_timeout_s=0.5)
    with pytest.raises(ComfyUIUnavailable, match="cannot reach ComfyUI"):
        await dead.submit(basic_graph(), "nobody-home")
    report = await dead.health()
    assert not report.ok and report.error


async def test_environment_object_info_and_health(comfy: ComfyUITestServer) -> None:
    client = client_for(comfy)
    environment = await client.system_stats()
    assert environment.comfyui_version == "0.3.64"
    assert environment.pytorch_version and environment.devices
    info = await client.object_info("EmptyImage")
    assert info["EmptyImage"]["output"] == ["IMAGE"]
    assert await client.object_info("NoSuchNode") == {}
    report = await client.health()
    assert report.ok and report.queue_remaining == 0 and report.comfyui_version == "0.3.64"


async def test_events_of_other_prompts_are_not_reported(comfy: ComfyUITestServer) -> None:
    client = client_for(comfy)
    seen: list[Any] = []
    await asyncio.gather(
        client.render(basic_graph(color=5), "mine", on_event=seen.append),
        client.render(basic_graph(color=6), "theirs"),
    )
    assert {e.prompt_id for e in seen} == {"mine"}


async def test_binary_preview_frames_do_not_disturb_following(comfy: ComfyUITestServer) -> None:
    graph = basic_graph(batch=3)
    graph["3"] = {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}}
    events: list[ProgressEvent] = []
    result = await client_for(comfy).render(graph, "previews", on_event=events.append)
    assert result.status == "success" and result.outputs == []
    assert [e.value for e in events if isinstance(e, NodeProgress) and e.node == "3"] == [1, 2, 3]


@pytest.mark.parametrize(
    "error",
    [
        ComfyUIExecutionError(
            node_id="1", node_type="X", exception_type="E", exception_message="m", prompt_id="p"
        ),
        ComfyUIPromptLost("gone", server="http://s", prompt_id="p"),
        ComfyUIValidationError.from_body(
            sample_validation_body(), server="http://s", prompt_id="p"
        ),
    ],
)
def test_errors_survive_pickling_into_prefect_states(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


async def test_partly_valid_workflow_is_taken_back_and_refused(comfy: ComfyUITestServer) -> None:
    """ComfyUI queues the outputs that validate and drops the others (200 + node_errors)."""
    graph = basic_graph()
    graph["5"] = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1}}
    graph["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}
    with pytest.raises(ComfyUIValidationError, match="node 5 \\(EmptyImage\\) input 'color'"):
        await client_for(comfy).submit(graph, "half-valid")
    comfy.wait_idle()
    assert comfy.stats.prompts_accepted == 1
    statuses = [e["status"]["status_str"] for e in comfy.history().values()]
    assert "success" not in statuses
