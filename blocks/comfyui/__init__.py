"""ComfyUI: a server as a Prefect block, its client, a pool of servers with slots, and one
prompt run to its end with live progress.

Register the block with `prefect block register -m blocks.comfyui`. The modules, one concern
each, in import order (a module imports only modules above it):

  errors     what can go wrong, as exceptions; `retry_transient_only` for task retries
  models     what the client hands back: ids, submissions, progress events, results, files
  transport  settings, HTTP sessions and answer checks, credentials kept out of logs
  downloads  output files onto local disk: streamed, size-capped, at safe paths
  follow     a prompt's WebSocket, its messages as events, the follower
  client     `ComfyUIClient`: ComfyUI's HTTP protocol, following and downloading
  server     `ComfyUIServer`: the block (configuration) and its one client (`get_client`)
  leases     server slots as Prefect leases, noted on disk (dead processes' given back)
  pool       `ComfyUIPool`: several servers, slots as Prefect global concurrency limits
  progress   live progress in the Prefect run: log lines and a progress artifact
  saved      a finished prompt's files found again by name on the server, and verified
  run        `render_on`: slot, submit or re-attach, follow, download (`PromptRun`)
"""

from blocks.comfyui.client import ComfyUIClient, check_api_graph
from blocks.comfyui.errors import (
    ComfyUIAttemptTimeout,
    ComfyUIAuthError,
    ComfyUICancelled,
    ComfyUIConcurrencyLimitMissing,
    ComfyUIDownloadStalled,
    ComfyUIError,
    ComfyUIExecutionError,
    ComfyUIOutage,
    ComfyUIOutputError,
    ComfyUIOutputTooLarge,
    ComfyUIPoolBusy,
    ComfyUIPromptConflict,
    ComfyUIPromptLost,
    ComfyUIProtocolError,
    ComfyUIRenderTimeout,
    ComfyUIResponseTooLarge,
    ComfyUIServerNotFound,
    ComfyUITransientError,
    ComfyUIUnavailable,
    ComfyUIValidationError,
    retry_transient_only,
)
from blocks.comfyui.leases import release_dead_leases
from blocks.comfyui.models import PromptResult, prompt_id_for
from blocks.comfyui.pool import ComfyUIPool, ensure_concurrency_limits, slots_kept_for_run
from blocks.comfyui.progress import RenderProgress
from blocks.comfyui.run import FinishedPrompt, PromptRun, RenderTimings, render_on
from blocks.comfyui.saved import output_prefix
from blocks.comfyui.server import ComfyUIServer, find_server, is_url, saved_servers

__all__ = [
    "ComfyUIAttemptTimeout",
    "ComfyUIAuthError",
    "ComfyUICancelled",
    "ComfyUIClient",
    "ComfyUIConcurrencyLimitMissing",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIOutage",
    "ComfyUIOutputError",
    "ComfyUIOutputTooLarge",
    "ComfyUIResponseTooLarge",
    "ComfyUIDownloadStalled",
    "ComfyUIPool",
    "ComfyUIPoolBusy",
    "ComfyUIPromptConflict",
    "ComfyUIPromptLost",
    "ComfyUIProtocolError",
    "ComfyUIRenderTimeout",
    "ComfyUIServer",
    "ComfyUIServerNotFound",
    "ComfyUITransientError",
    "ComfyUIUnavailable",
    "ComfyUIValidationError",
    "FinishedPrompt",
    "PromptResult",
    "PromptRun",
    "RenderProgress",
    "RenderTimings",
    "check_api_graph",
    "ensure_concurrency_limits",
    "find_server",
    "is_url",
    "output_prefix",
    "prompt_id_for",
    "release_dead_leases",
    "render_on",
    "retry_transient_only",
    "saved_servers",
    "slots_kept_for_run",
]
