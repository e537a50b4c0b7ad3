"""What can go wrong talking to ComfyUI, as exceptions a flow can act on.

`ComfyUITransientError` and its subclasses are worth a retry (Prefect task retries re-attach
to the same prompt id, so a retry never renders twice); everything else is a verdict, and
`retry_transient_only` is the Prefect retry condition that says so. No message here ever
carries an auth header value: messages are built from the server's answers and our own
words only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ComfyUIError(Exception):
    """Base of every ComfyUI failure. `server` is the base URL (never credentials)."""

    def __init__(self, message: str, *, server: str = "", prompt_id: str | None = None) -> None:
        self.server = server
        self.prompt_id = prompt_id
        where = []
        if server:
            where.append(f"server {server}")
        if prompt_id:
            where.append(f"prompt {prompt_id}")
        super().__init__(f"{message} [{', '.join(where)}]" if where else message)
        self.detail = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions into states; keep the keyword-only fields.
        return (_rebuild, (type(self), self.__dict__.copy(), self.args))


def _rebuild(cls: type[ComfyUIError], state: dict[str, Any], args: tuple[Any, ...]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


@dataclass(frozen=True)
class NodeError:
    """One reason ComfyUI refused a node (from a 400's `node_errors`)."""

    node_id: str
    class_type: str
    type: str
    message: str
    details: str = ""
    input_name: str | None = None
    received_value: Any = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name:
            where += f" input '{self.input_name}'"
        text = f"{where}: {self.message}"
        if self.details and self.details != self.input_name:
            text += f" ({self.details})"
        if self.received_value is not None and "received" not in text:
            text += f", received {self.received_value!r}"
        return f"{text} [{self.type}]"


class ComfyUIValidationError(ComfyUIError):
    """ComfyUI refused the workflow (HTTP 400): nothing was queued."""

    def __init__(
        self,
        error_type: str,
        error_message: str,
        node_errors: list[NodeError],
        *,
        details: str = "",
        server: str = "",
        prompt_id: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.error_message = error_message
        self.node_errors = node_errors
        lines = [f"ComfyUI refused the workflow: {error_message} ({error_type})"]
        if details and not node_errors:
            lines[0] += f": {details}"
        lines += [f"  - {e.describe()}" for e in node_errors]
        super().__init__("\n".join(lines), server=server, prompt_id=prompt_id)

    @classmethod
    def from_body(
        cls, body: Any, *, server: str = "", prompt_id: str | None = None
    ) -> ComfyUIValidationError:
        body = body if isinstance(body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        raw_nodes = body.get("node_errors") if isinstance(body.get("node_errors"), dict) else {}
        node_errors = [
            NodeError(
                node_id=str(node_id),
                class_type=str(entry.get("class_type", "?")),
                type=str(reason.get("type", "")),
                message=str(reason.get("message", "")),
                details=str(reason.get("details", "")),
                input_name=(reason.get("extra_info") or {}).get("input_name"),
                received_value=(reason.get("extra_info") or {}).get("received_value"),
                extra_info=dict(reason.get("extra_info") or {}),
            )
            for node_id, entry in raw_nodes.items()
            if isinstance(entry, dict)
            for reason in entry.get("errors", [])
            if isinstance(reason, dict)
        ]
        return cls(
            str(error.get("type", "unknown")),
            str(error.get("message", "validation failed")),
            node_errors,
            details=str(error.get("details", "")),
            server=server,
            prompt_id=prompt_id,
        )


class ComfyUIExecutionError(ComfyUIError):
    """A node raised while the prompt ran (`execution_error`)."""

    def __init__(
        self,
        *,
        node_id: str,
        node_type: str,
        exception_type: str,
        exception_message: str,
        traceback: list[str] | None = None,
        server: str = "",
        prompt_id: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message.strip()
        self.traceback = traceback or []
        super().__init__(
            f"node {node_id} ({node_type}) failed: {exception_type}: {self.exception_message}",
            server=server,
            prompt_id=prompt_id,
        )


class ComfyUICancelled(ComfyUIError):
    """The prompt was interrupted or taken off the queue."""


class ComfyUIPromptConflict(ComfyUIError):
    """The server waits on or runs another graph under this render's prompt id."""


class ComfyUIAuthError(ComfyUIError):
    """The server (or the proxy in front of it) refused our credentials."""


class ComfyUIProtocolError(ComfyUIError):
    """The server answered something ComfyUI does not answer (wrong URL, not ComfyUI)."""


class ComfyUIOutputError(ComfyUIError):
    """An output could not be stored safely."""


class ComfyUIOutputTooLarge(ComfyUIOutputError):
    """An output is bigger than the block's size cap; nothing was kept."""


class ComfyUIResponseTooLarge(ComfyUIProtocolError):
    """An answer (e.g. /object_info) over its size cap: refused before it is all read."""


class ComfyUIDownloadStalled(ComfyUIError):
    """A download went on too slowly (under the block's minimum byte rate after its grace
    period) or too long (past its deadline). A verdict, not an outage: the server answers,
    it is just not delivering, so waiting for it to come back would wait forever."""


class ComfyUIAttemptTimeout(ComfyUIError):
    """One render attempt outlasted the block's `attempt_timeout_s` (queue, rendering and
    downloads together); its prompt was withdrawn from the server. A verdict: a retry
    would wait as long again."""


class ComfyUIConcurrencyLimitMissing(ComfyUIError):
    """A server's Prefect global concurrency limit does not exist (see
    `ensure_concurrency_limits`); slots would not be enforced, so nothing runs."""


class ComfyUIServerNotFound(ComfyUIError, LookupError):
    """No ComfyUI server block by that name: a user's mistake, named in the message."""


class ComfyUITransientError(ComfyUIError):
    """Retrying may help (`render_on` waits for the server, then goes on). `down_since`
    (monotonic seconds): when the follower first found the server unreachable, if it did."""

    down_since: float | None = None


class ComfyUIUnavailable(ComfyUITransientError):
    """Connection refused, timed out, or a 5xx answer."""


class ComfyUIOutage(ComfyUIError):
    """The server stayed unreachable for longer than its outage window
    (`unreachable_grace_s`): a verdict, not retried (the window was the retry)."""


class ComfyUIPromptLost(ComfyUITransientError):
    """The prompt is in neither the queue nor the history: the server restarted and lost it."""


class ComfyUIRenderTimeout(ComfyUITransientError):
    """The render deadline passed; the prompt may still run on the server (a retry
    re-attaches to it)."""


class ComfyUIPoolBusy(ComfyUITransientError):
    """No server slot became free in time."""


async def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry what may pass next time, never a verdict
    (validation error, execution error, cancellation, output over the cap).

    Async on purpose: in an async task `state.result()` is a coroutine, and a sync check that
    calls it sees no exception and never retries."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            outcome = await state.aresult(raise_on_failure=False)
        except Exception as exc:
            outcome = exc
        error = outcome if isinstance(outcome, BaseException) else None
    return isinstance(error, ComfyUITransientError)
