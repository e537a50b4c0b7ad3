"""What a run prints in its terminal: one link to the run in the Prefect UI, not two per
scene and per cut (678 lines of links for a 300-cut episode, each printed through rich's
console at a cost the cut's own lines share). The cuts' runs stay one click away in the UI,
under the episode's run; nothing sent to the Prefect API is touched (the links never were)."""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext

# Prefect logs "View at <url>" as a flow run is created (on its engine's logger, in the
# parent's context) and again as it begins (on the flow runs' logger, in its own).
LINK_LOGGERS = ("prefect.engine", "prefect.flow_runs")


class SubflowLinksOff(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("View at ")):
            return True
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            return True  # a top-level run's link
        if record.name == "prefect.engine":
            return False  # created inside another run: a subflow's
        return context.flow_run.parent_task_run_id is None


_filter = SubflowLinksOff()
for _name in LINK_LOGGERS:
    logging.getLogger(_name).addFilter(_filter)
