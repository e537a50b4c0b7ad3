"""What a run's log holds beside its own lines: one link to the run in the Prefect UI, not
two per scene and per cut (678 lines of links for a 300-cut episode), and none of Prefect's
routine lines for a step inside the run ("Beginning subflow run", "Finished in state
Completed()" of each cut, render and judge: three lines of eight per cut). The UI shows those
steps' states already; each line was formatted in the run's terminal, sent to the Prefect
API and stored by its server. What a cut did stays in its own lines (progress, verdicts), and
every step that ends otherwise than Completed still logs its end, at ERROR.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext

# Prefect logs "View at <url>" as a flow run is created (on its engine's logger, in the
# parent's context) and again as it begins (on the flow runs' logger, in its own).
LINK_LOGGERS = ("prefect.engine", "prefect.flow_runs")
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
ROUTINE = ("Beginning subflow run ", "Finished in state Completed(")


def _nested(record: logging.LogRecord) -> bool:
    """Whether the record is logged by a step of a run (a task run or a subflow)."""
    if TaskRunContext.get() is not None:
        return True
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return False
    # A subflow logs its end after its own context is gone, in its parent's.
    logged_by = getattr(record, "flow_run_id", None)
    if logged_by is not None and str(logged_by) != str(context.flow_run.id):
        return True
    return context.flow_run.parent_task_run_id is not None


class RoutineStepLinesOff(logging.Filter):
    """Both rules in one filter: the subflows' links and the steps' routine lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str):
            return True
        if message.startswith("View at "):
            if record.name == "prefect.engine":  # created inside another run: a subflow's
                context = FlowRunContext.get()
                return context is None or context.flow_run is None
            return not _nested(record)
        if message.startswith(ROUTINE):
            return record.levelno > logging.INFO or not _nested(record)
        return True


_filter = RoutineStepLinesOff()
for _name in dict.fromkeys(LINK_LOGGERS + RUN_LOGGERS):
    logging.getLogger(_name).addFilter(_filter)
