"""The ComfyUI pieces inside Prefect: block registration, slots as global concurrency limits,
task retries on transient errors only, and progress artifacts."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.cli.block import _register_blocks_in_module
from prefect.client.orchestration import get_client

import blocks.comfyui
from blocks.comfyui import (
    ComfyUIConcurrencyLimitMissing,
    ComfyUIPool,
    ComfyUIServer,
    ComfyUIUnavailable,
    ComfyUIValidationError,
    RenderProgress,
    ensure_concurrency_limits,
    prompt_id_for,
    render_on,
    retry_transient_only,
)
from blocks.comfyui.pool import slots_kept_for_run
from blocks.comfyui.progress import Throttle, _artifact_key
from tests.comfyui.helpers import basic_graph, block_for
from tests.comfyui_server import ComfyUITestServer

pytestmark = pytest.mark.usefixtures("prefect_harness")

# A render task as flows declare one: `render_on`, retried on transient errors only.
render_task = task(
    render_on,
    name="comfyui-render",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_transient_only,
    cache_policy=NO_CACHE,
)


async def test_block_registers_and_its_token_stays_secret() -> None:
    registered = await _register_blocks_in_module(blocks.comfyui)
    assert ComfyUIServer in registered
    name = f"gpu-{uuid.uuid4().hex[:8]}"
    await ComfyUIServer(base_url="http://gpu-1:8188/", auth_token="tok-123", slots=2).asave(name)

    loaded = await ComfyUIServer.aload(name)
    assert loaded.base_url == "http://gpu-1:8188" and loaded.slots == 2
    assert loaded.auth_token is not None and loaded.auth_token.get_secret_value() == "tok-123"
    assert loaded.concurrency_limit == "comfyui:gpu-1:8188"
    async with get_client() as client:
        document = await client.read_block_document_by_name(
            name, block_type_slug="anime-comfyui-server", include_secrets=False
        )
    assert "tok-123" not in str(document.data)
    with pytest.raises(ValueError, match="http"):
        ComfyUIServer(base_url="gpu-1:8188")


async def test_two_servers_with_one_slot_never_run_two_prompts_at_once(tmp_path: Path) -> None:
    with (
        ComfyUITestServer(tmp_path / "a", render_time_s=0.2) as a,
        ComfyUITestServer(tmp_path / "b", render_time_s=0.2) as b,
    ):
        servers = [block_for(a, slots=1), block_for(b, slots=1)]
        assert await ensure_concurrency_limits(servers) == {
            servers[0].concurrency_limit: 1,
            servers[1].concurrency_limit: 1,
        }
        # Two pools stand for two worker processes: only Prefect's limits are shared.
        pools = [ComfyUIPool(servers, retry_interval_s=0.05) for _ in range(2)]
        jobs = [
            pools[i % 2].render(basic_graph(color=i), prompt_id_for("pool-job", i))
            for i in range(4)
        ]
        rendered = await asyncio.gather(*jobs)

        assert all(result.status == "success" for _, result in rendered)
        assert {server.base_url for server, _ in rendered} == {a.url, b.url}
        assert a.stats.max_in_flight == 1 and b.stats.max_in_flight == 1
        assert a.stats.prompts_executed + b.stats.prompts_executed == 4

        # The same burst without the pool piles up on one server: the check above can fail.
        client = servers[0].get_client()
        direct = [client.render(basic_graph(color=10 + i), f"direct-{i}") for i in range(2)]
        await asyncio.gather(*direct)
        assert a.stats.max_in_flight == 2


async def test_a_missing_concurrency_limit_is_an_error_not_a_free_pass(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c") as comfy:
        server = block_for(comfy, concurrency_limit_name=f"comfyui:never-{uuid.uuid4().hex}")
        pool = ComfyUIPool([server])
        with pytest.raises(ComfyUIConcurrencyLimitMissing, match="anime comfyui add"):
            await pool.render(basic_graph(), "no-limit")
        with pytest.raises(ComfyUIConcurrencyLimitMissing):
            async with pool.slot(prefer=server):
                pass
        assert comfy.stats.prompts_posted == 0


async def test_render_task_retries_a_lost_prompt_and_succeeds(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.4) as comfy:
        comfy.faults.restart_at_tick = 3
        comfy.faults.restart_downtime_s = 0.2
        server = block_for(comfy)
        quick_retries = render_task.with_options(retries=5, retry_delay_seconds=0.3)

        @flow
        async def render_cut() -> Any:
            return await quick_retries(
                server, basic_graph(), prompt_id_for("cut-1", 1), tmp_path / "out", label="cut-1"
            )

        outcome = await render_cut()
        assert outcome.result.status == "success" and outcome.files[0].path.is_file()
        assert outcome.environment is not None and outcome.environment.comfyui_version
        stats = comfy.stats
        assert (stats.restarts, stats.prompts_accepted, stats.prompts_completed) == (1, 2, 1)


async def test_render_task_does_not_retry_a_validation_error(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "c") as comfy:
        graph = basic_graph()
        graph["1"]["inputs"]["height"] = 0
        retrying = render_task.with_options(retries=3, retry_delay_seconds=0)

        @flow
        async def render_cut() -> Any:
            return await retrying(block_for(comfy), graph, "bad-cut", tmp_path / "out")

        with pytest.raises(ComfyUIValidationError, match="node 1 \\(EmptyImage\\) input 'height'"):
            await render_cut()
        assert comfy.stats.prompts_posted == 1


async def test_progress_reaches_the_run_as_a_throttled_artifact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prefect.flow_runs")
    with ComfyUITestServer(tmp_path / "c", render_time_s=0.3, progress_steps=10) as comfy:
        prompt_id = prompt_id_for("progress-job", 1)
        published: list[float] = []

        @flow
        async def render_cut() -> None:
            # A long render's artifact, scaled down: it starts 0.1 s in, not 5 s.
            progress = RenderProgress(prompt_id, "cut-7", total_nodes=3, artifact_delay_s=0.1)
            await render_on(block_for(comfy), basic_graph(), prompt_id, tmp_path, progress=progress)
            published.extend(progress.published)

        await render_cut()

    assert published[-1] == 100.0 and published == sorted(published)
    assert 2 <= len(published) <= 3  # 30 progress ticks: the start, halfway, the end
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cut-7:")]
    assert len(lines) == len(published) and lines[-1] == "cut-7: 100% (success)"
    # Raw filter: Prefect 3.8.8's client sends null run filters its own server refuses.
    key = _artifact_key(prompt_id)
    async with get_client() as client:
        answer = await client._client.post(
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 5},
        )
    [artifact] = answer.json()
    assert artifact["type"] == "progress" and float(artifact["data"]) == 100.0


def test_throttle_publishes_on_big_steps_or_after_a_pause() -> None:
    now = [0.0]
    throttle = Throttle(min_interval_s=1.5, min_step=10.0, clock=lambda: now[0])
    assert throttle.due(1.0)  # first value always
    assert not throttle.due(5.0)  # small step, too soon
    assert throttle.due(12.0)  # a 10-point jump
    now[0] = 2.0
    assert throttle.due(13.0)  # small step, but 1.5 s passed
    assert not throttle.due(13.0)  # nothing new
    assert throttle.due(13.0, final=True)  # the end always shows


class _Recorded(RenderProgress):
    """Records what would be written to the artifact: the throttling is what is tested."""

    writes: list[float]

    async def _publish(self, percent: float) -> None:
        self.writes = [*getattr(self, "writes", []), percent]


def _paced_progress(seconds_per_tick: float) -> tuple[_Recorded, Any]:
    """A one-node render of 20 progress ticks `seconds_per_tick` apart (on a fake clock)."""
    from blocks.comfyui.models import NodeProgress, PromptDone, PromptResult

    now = [0.0]
    progress = _Recorded(
        "p",
        "cut-1",
        total_nodes=1,
        artifacts=True,
        throttle=Throttle(clock=lambda: now[0]),
        artifact_throttle=Throttle(min_interval_s=5.0, min_step=25.0, clock=lambda: now[0]),
    )

    async def feed() -> None:
        for step in range(1, 21):
            await progress(NodeProgress(prompt_id="p", node="1", value=step, max=20))
            now[0] += seconds_per_tick
        done = PromptResult(prompt_id="p", server="http://x", status="success")
        await progress(PromptDone(prompt_id="p", result=done))

    return progress, feed


async def test_progress_artifact_is_left_out_for_a_short_render_and_paced_for_a_long_one():
    short, feed = _paced_progress(0.05)  # a 1 s render: no progress artifact at all
    await feed()
    assert getattr(short, "writes", []) == [] and short.published[-1] == 100.0
    long, feed = _paced_progress(1.0)  # a 20 s render: first write after 5 s, then paced
    await feed()
    assert long.writes[-1] == 100.0 and 3 <= len(long.writes) <= 6
    assert long.writes == sorted(long.writes)
    # The log: the first tick, halfway, the end; not one line per tick.
    assert [round(p) for p in long.published] == [5, 55, 100]


async def test_a_slot_given_back_in_process_is_taken_at_once_not_at_the_next_poll(tmp_path: Path):
    with ComfyUITestServer(tmp_path / "a", render_time_s=0.2) as a:
        server = block_for(a, slots=1)
        await ensure_concurrency_limits([server])
        # A poll every minute: only the in-process wake-up can finish this within the bound.
        pool = ComfyUIPool([server], retry_interval_s=60.0)
        jobs = [
            pool.render(basic_graph(color=i), prompt_id_for("wake", i), new_prompt=True)
            for i in range(3)
        ]
        rendered = await asyncio.wait_for(asyncio.gather(*jobs), timeout=30)
        assert [r.status for _, r in rendered] == ["success"] * 3
        assert a.stats.max_in_flight == 1


async def test_a_render_waiting_for_another_process_looks_less_and_less_often(
    tmp_path: Path,
) -> None:
    from blocks.comfyui.leases import SlotLease

    with ComfyUITestServer(tmp_path / "a") as a:
        server = block_for(a, slots=1)
        await ensure_concurrency_limits([server])
        pool = ComfyUIPool([server], retry_interval_s=0.1, max_retry_interval_s=1.0)
        looks: list[float] = []
        look = pool._free_slots

        async def counted(servers: Any) -> dict[str, float]:
            looks.append(asyncio.get_running_loop().time())
            return await look(servers)

        pool._free_slots = counted  # type: ignore[method-assign]
        # Another process's render holds the only slot: nothing in this process wakes ours.
        elsewhere = await SlotLease.take(server.concurrency_limit, 60.0)

        async def ours() -> str:
            async with pool.slot() as got:
                return got.base_url

        waiting = asyncio.create_task(ours())
        await asyncio.sleep(4.0)
        assert not waiting.done()
        # A look every 0.1 s (+-50%) would be 20 or more by now; pauses doubling up to 1 s
        # (+-50%) are 12 at most, the last of them at least 0.4 s long.
        assert 3 <= len(looks) <= 12
        assert looks[-1] - looks[-2] >= 0.4
        await elsewhere.give_back()  # freed there: seen by the next look
        assert await asyncio.wait_for(waiting, timeout=10) == server.base_url


async def test_pool_skips_a_dead_server_and_fails_when_all_are_dead(tmp_path: Path) -> None:
    with ComfyUITestServer(tmp_path / "gone") as gone:
        dead = block_for(gone, connect_timeout_s=0.3)
    with ComfyUITestServer(tmp_path / "alive") as alive:
        healthy = block_for(alive)
        await ensure_concurrency_limits([dead, healthy])
        pool = ComfyUIPool([dead, healthy], retry_interval_s=0.05)
        for i in range(2):
            server, result = await pool.render(basic_graph(color=i), f"survivor-{i}")
            assert server.base_url == alive.url and result.status == "success"
    with pytest.raises(ComfyUIUnavailable, match="failed its health check"):
        await ComfyUIPool([dead], retry_interval_s=0.05).render(basic_graph(), "nowhere")


async def test_a_slot_held_longer_than_its_lease_is_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import PrefectClient

    renewals: list[uuid.UUID] = []
    renew = PrefectClient.renew_concurrency_lease

    async def counted(self: PrefectClient, lease_id: uuid.UUID, lease_duration: float) -> Any:
        renewals.append(lease_id)  # counted, then renewed for real
        return await renew(self, lease_id, lease_duration)

    monkeypatch.setattr(PrefectClient, "renew_concurrency_lease", counted)
    # Prefect's shortest lease is 60 s, renewed at 3/4: here at 1% of it (every 0.6 s), so
    # that a render of seconds outlives several renewals.
    monkeypatch.setattr(blocks.comfyui.leases, "RENEW_AT", 0.01)
    with ComfyUITestServer(tmp_path / "a", render_time_s=2.5) as a:
        server = block_for(a, slots=1)
        await ensure_concurrency_limits([server])
        pool = ComfyUIPool([server], lease_duration_s=60.0)
        _, result = await pool.render(basic_graph(), prompt_id_for("renewed", 1), new_prompt=True)
    assert result.status == "success"
    # Renewed every 0.6 s while the 2.5 s render holds it, always the same lease.
    assert len(renewals) >= 2 and len(set(renewals)) == 1


async def test_a_slot_whose_lease_is_lost_stops_its_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.comfyui.leases import ComfyUISlotLost, lease_dir

    monkeypatch.setattr(blocks.comfyui.leases, "RENEW_AT", 0.01)  # as above: every 0.6 s
    with ComfyUITestServer(tmp_path / "a", render_time_s=15.0) as a:
        server = block_for(a, slots=1)
        await ensure_concurrency_limits([server])
        pool = ComfyUIPool([server], lease_duration_s=60.0)
        render = asyncio.create_task(
            pool.render(basic_graph(), prompt_id_for("lost-lease", 1), new_prompt=True)
        )
        note = None
        for _ in range(100):  # the lease's note appears once the slot is held
            held = lease_dir().glob("*.json")
            notes = [p for p in held if server.concurrency_limit in p.read_text()]
            if notes:
                note = notes[0]
                break
            await asyncio.sleep(0.05)
        assert note is not None
        lease_id = uuid.UUID(note.stem)
        async with get_client() as client:  # the server forgets the lease (as on expiry)
            await client.release_concurrency_slots_with_lease(lease_id)
        with pytest.raises(ComfyUISlotLost, match="could not be renewed"):
            await asyncio.wait_for(render, 10)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The limit of every slot lease taken from Prefect (not passed on in the process)."""
    from blocks.comfyui.leases import SlotLease

    taken: list[str] = []
    take = SlotLease.take.__func__  # type: ignore[attr-defined]

    async def counted(cls: type[SlotLease], name: str, duration_s: float) -> SlotLease:
        lease = await take(cls, name, duration_s)  # a try refused (423) takes nothing
        taken.append(name)
        return lease

    monkeypatch.setattr(SlotLease, "take", classmethod(counted))
    return taken


async def test_a_slot_passes_to_the_next_render_of_the_process_not_back_to_prefect(
    tmp_path: Path, taken: list[str]
) -> None:
    # Renders of 1 s: every render of a process is waiting before the first one ends.
    with ComfyUITestServer(tmp_path / "a", render_time_s=1.0) as a:
        server = block_for(a, slots=1)
        await ensure_concurrency_limits([server])
        ours = ComfyUIPool([server], retry_interval_s=60.0)
        # Another process's renders (an event loop of their own, as in another process),
        # polling: they get the slot only when it is really free.
        theirs = ComfyUIPool([server], retry_interval_s=0.05)

        @task(cache_policy=NO_CACHE)
        async def render_one(i: int) -> str:
            _, result = await ours.render(basic_graph(color=i), prompt_id_for("handed", i))
            return result.status

        @flow
        async def three_renders() -> list[str]:
            return await asyncio.gather(*(render_one(i) for i in range(3)))

        async def elsewhere() -> list[str]:
            await asyncio.sleep(0.5)  # ours holds the slot first
            jobs = [theirs.render(basic_graph(color=10 + i), f"theirs-{i}") for i in range(2)]
            return [result.status for _, result in await asyncio.gather(*jobs)]

        statuses = await asyncio.gather(
            three_renders(), asyncio.to_thread(asyncio.run, elsewhere())
        )
        assert statuses == [["success"] * 3, ["success"] * 2]
        # One slot, never two prompts at once: a task that handed its lease on did not give
        # it back to Prefect when it ended, under the render that held it then.
        assert a.stats.max_in_flight == 1 and a.stats.prompts_executed == 5
        # Five renders, two leases: each process's renders passed theirs along.
        assert len(taken) == 2
        async with get_client() as client:
            limit = await client.read_global_concurrency_limit_by_name(server.concurrency_limit)
        assert limit.active_slots == 0  # and given back at the end

        # A hand-over window of 0: every render goes back to Prefect for its slot.
        taken.clear()
        fair = ComfyUIPool([server], retry_interval_s=0.05, hand_over_s=0.0)
        jobs = [fair.render(basic_graph(color=20 + i), f"fair-{i}") for i in range(3)]
        await asyncio.gather(*jobs)
        assert len(taken) == 3


async def _active_slots(name: str) -> int:
    """Slots of the limit `name` that Prefect counts as held."""
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(name)).active_slots


async def test_a_slot_freed_while_the_process_still_renders_waits_briefly_for_its_next_render(
    tmp_path: Path, taken: list[str]
) -> None:
    with ComfyUITestServer(tmp_path / "a") as a:
        server = block_for(a, slots=2)
        name = server.concurrency_limit
        await ensure_concurrency_limits([server])
        pool = ComfyUIPool([server], linger_s=0.5)
        async with pool.slot():  # a long render of this process
            async with pool.slot():
                pass  # a short one: its slot is kept for the next render
            assert await _active_slots(name) == 2
            async with pool.slot():
                pass  # took the kept slot, and keeps it again
            assert len(taken) == 2 and await _active_slots(name) == 2
            await asyncio.sleep(1.0)  # nobody came within linger_s: given back
            assert await _active_slots(name) == 1
            async with pool.slot():
                pass
            assert len(taken) == 3
        # The process's last render ended: nothing is kept past it.
        assert await _active_slots(name) == 0


async def test_a_run_keeps_the_slot_of_its_only_render_for_its_next_one_until_it_ends(
    tmp_path: Path, taken: list[str]
) -> None:
    with ComfyUITestServer(tmp_path / "a") as a:
        server = block_for(a, slots=2)
        name = server.concurrency_limit
        await ensure_concurrency_limits([server])
        pool = ComfyUIPool([server], linger_s=0.5)
        async with slots_kept_for_run():
            for _ in range(3):  # one render after another: none of them overlaps the next
                async with pool.slot():
                    pass
                assert await _active_slots(name) == 1  # kept for the run's next render
            assert len(taken) == 1  # one lease from Prefect for the three renders
            await asyncio.sleep(1.0)  # no render came within linger_s: given back
            assert await _active_slots(name) == 0
            async with pool.slot():
                pass
            assert len(taken) == 2
        # The run ended: its kept slot went back with it.
        assert await _active_slots(name) == 0
