"""Fetching model weights only when a download can work, and reading them (the studio's own
model folder is ``places.models_dir``).

Downloads happen only the way each library normally does them, and only after the download
host answered a quick connection probe: huggingface_hub alone retries for about 23 s per file
when offline.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch

from tasks.scoring.loading.errors import ModelUnavailable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

PROBE_TIMEOUT_S = 3.0


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def host_answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host (or the HTTPS proxy) opens within timeout.

    Runs in a thread because name resolution has no timeout of its own."""
    proxy = urllib.request.getproxies().get(urlparse(url).scheme)
    target = urlparse(proxy if proxy else url)
    host = target.hostname
    if not host:
        return False
    port = target.port or (443 if target.scheme == "https" else 80)
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(answered and answered[0])


def download_blocker(models: ScoringModels, url: str) -> str | None:
    """Why a download from ``url`` will not be tried, or None when it may be."""
    if not models.allow_downloads:
        return "downloads are off (ScoringModels.allow_downloads is false)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if not host_answers(url):
        return f"{urlparse(url).hostname} does not answer (offline?)"
    return None


def download_file(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the target and rename, so an interrupted fetch never looks complete.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(url, tmp, progress=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_or_fail(
    models: ScoringModels, url: str, target: Path, *, model: str, field: str, kit: str
) -> None:
    """Download ``url`` to ``target`` when allowed and online, else raise ModelUnavailable.

    ``kit``: the name ``anime models fetch`` knows this model by."""
    how = (
        f"Run `anime models fetch {kit}` where there is internet, or download {url} to "
        f"{target}, or set ScoringModels.{field} to a local copy of that file."
    )
    blocker = download_blocker(models, url)
    if blocker:
        raise ModelUnavailable(model, str(target), how, problem=f"not found ({blocker})")
    try:
        download_file(url, target)
    except Exception as exc:  # any network or disk failure: say what and where
        raise ModelUnavailable(model, str(target), how, problem=f"download failed ({exc})") from exc


def load_state_dict(path: Path, *, model: str, how: str) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict (unwrapped from ``state_dict`` / ``model``), on the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelUnavailable(model, str(path), how, problem=f"unreadable ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelUnavailable(model, str(path), how, problem="not a state dict")
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return state
