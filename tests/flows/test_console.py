"""A run's terminal shows its own link to the Prefect UI, not one per scene and cut run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import flow
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

import flows.console  # noqa: F401  (what flows/scene.py installs)


@flow(name="test-console-cut")
async def _cut() -> str:
    return flow_run.get_id()


@flow(name="test-console-episode")
async def _episode() -> tuple[str, list[str]]:
    return flow_run.get_id(), [await _cut() for _ in range(3)]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _captured(names: tuple[str, ...]) -> Iterator[_Lines]:
    """The INFO lines of these loggers (the test settings log warnings only)."""
    lines = _Lines()
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(lines)
        logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(lines)
            logger.setLevel(level)


async def test_the_terminal_links_the_episode_run_and_none_of_its_cut_runs(prefect_harness):
    ui = PREFECT_API_URL.value().removesuffix("/api")
    with _captured(flows.console.LINK_LOGGERS) as lines, temporary_settings({PREFECT_UI_URL: ui}):
        episode, cuts = await _episode()

    links = [line for line in lines.lines if line.startswith("View at ")]
    assert links and all(episode in link for link in links), links
    assert not [line for line in lines.lines if any(cut in line for cut in cuts)]


@flow(name="test-console-step-episode")
async def _steps() -> None:
    await _cut()
    await _cut()


async def test_routine_step_lines_stay_out_of_the_log_and_the_runs_own_stay(prefect_harness):
    with _captured(flows.console.RUN_LOGGERS) as lines:
        await _steps()

    assert not [line for line in lines.lines if line.startswith("Beginning subflow run ")]
    # The episode's own start and end are kept; the two cut runs' ends are not.
    assert [line for line in lines.lines if line.startswith("Beginning flow run ")]
    assert len([line for line in lines.lines if line.startswith("Finished in state")]) == 1


def test_a_step_that_did_not_complete_still_logs_its_end():
    record = logging.LogRecord(
        "prefect.task_runs", logging.ERROR, __file__, 0, "Finished in state Failed()", None, None
    )
    assert flows.console.RoutineStepLinesOff().filter(record)
