"""The run's admission of scene and cut runs (flows/limits.py): at the start one scene and as
many cuts as render slots, widened once a cut is about to render."""

from __future__ import annotations

import asyncio
import contextvars

from flows.limits import cut_admission, render_slot, scene_admission, set_render_limit


async def _entered(admission, count: int) -> tuple[list[int], list[asyncio.Event], list]:
    entered: list[int] = []
    leave = [asyncio.Event() for _ in range(count)]

    async def one(i: int) -> None:
        async with admission():
            entered.append(i)
            await leave[i].wait()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0.05)
    return entered, leave, tasks


async def _in_a_run(body) -> None:
    # The limits live in context variables: each test sets its own, as a run does.
    await asyncio.create_task(body(), context=contextvars.copy_context())


async def test_one_scene_run_opens_until_a_cut_renders_then_as_many_as_cuts_admitted():
    async def body() -> None:
        set_render_limit(3)
        scenes, leave, tasks = await _entered(scene_admission, 8)
        assert scenes == [0], "only the first scene's run is created at the start"
        async with render_slot():
            await asyncio.sleep(0.05)
            assert len(scenes) == 6, "widened to twice the render slots once a cut renders"
        for event in leave:
            event.set()
        await asyncio.gather(*tasks)
        assert sorted(scenes) == list(range(8))

    await _in_a_run(body)


async def test_cut_runs_are_admitted_as_many_as_render_slots_then_twice_that():
    async def body() -> None:
        set_render_limit(2)
        cuts, leave, tasks = await _entered(cut_admission, 6)
        assert cuts == [0, 1]
        async with render_slot():
            await asyncio.sleep(0.05)
            assert len(cuts) == 4
        for event in leave:
            event.set()
        await asyncio.gather(*tasks)

    await _in_a_run(body)
