"""Subflows that end Cancelled with their outcome: a cut a person cancelled shows Cancelled in
the Prefect UI (not Completed), and the flow that called it still reads how far it got."""

from __future__ import annotations

from typing import Any

from prefect.states import Cancelled, State


def cancelled_with(outcome: Any, message: str) -> State:
    """What a subflow returns to end Cancelled, carrying its outcome."""
    return Cancelled(message=message, data=outcome)


async def outcome_of(state: State) -> Any:
    """The subflow's return value (called with ``return_state=True``), also when it ended
    Cancelled; a failure raises as a plain call would."""
    return await state.aresult(raise_on_failure=not state.is_cancelled())
