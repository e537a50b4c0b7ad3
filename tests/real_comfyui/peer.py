"""The real ComfyUI tier's server: the peer ComfyUI beside the checkout, or the studio's own.

`../shared/peers/comfyui` (or `ANIME_COMFYUI_PEER`) holds a real ComfyUI 0.3.64 with
`setup.sh VENV` and `start.sh VENV BASE PORT [--custom-nodes]`. `make comfyui-peer` builds its
virtual environment once, at `ANIME_COMFYUI_PEER_VENV` (default: `.cache/comfyui-venv` in
the checkout), so the tests never install anything. `COMFYUI_URL` names a running server
instead; then nothing is started, and the tests that must kill or restart a server skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0  # 23-28 s measured here; the first start after setup compiles bytecode


def peer_dir() -> Path:
    return Path(os.environ.get("ANIME_COMFYUI_PEER", REPO.parent / "shared" / "peers" / "comfyui"))


def peer_venv() -> Path:
    return Path(os.environ.get("ANIME_COMFYUI_PEER_VENV", REPO / ".cache" / "comfyui-venv"))


def unavailable() -> str | None:
    """Why the tier cannot run here, or None when it can."""
    if os.environ.get("COMFYUI_URL"):
        return None
    peer = peer_dir()
    if not (peer / "start.sh").is_file():
        return f"no ComfyUI: {peer} is absent and COMFYUI_URL is unset"
    if not (peer_venv() / ".ready").is_file():
        return f"the peer ComfyUI has no environment at {peer_venv()} (`make comfyui-peer`)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    url: str, timeout_s: float = READY_TIMEOUT_S, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/system_stats", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"ComfyUI at {url} was not ready after {timeout_s:.0f} s")


@dataclass
class RealComfyUI:
    """One real ComfyUI: the peer started here (`proc` set) or the studio's own (`proc` None)."""

    url: str
    base: Path | None = None  # where the peer writes: models/, input/, output/, user/
    port: int = 0
    custom_nodes: bool = True
    proc: subprocess.Popen | None = None
    log: Path | None = None
    starts: int = field(default=0)

    @property
    def controllable(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        assert self.base is not None
        args = [str(peer_dir() / "start.sh"), str(peer_venv()), str(self.base), str(self.port)]
        if self.custom_nodes:
            args.append("--custom-nodes")
        self.log = self.base / f"comfyui-{self.starts}.log"
        with self.log.open("wb") as out:
            # Its own process group: kill() reaches launch.py's python, not only the shell.
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        wait_ready(self.url, proc=self.proc)

    def kill(self) -> None:
        """kill -9, as a crashed host would: history and queue are lost with the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def placeholder_model(self, folder: str, name: str) -> Path:
        """A zero-byte model file: enough for ComfyUI to validate a graph that names it."""
        assert self.base is not None, "placeholder files need the peer, not COMFYUI_URL"
        path = self.base / "models" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


def launch(base: Path, *, custom_nodes: bool = True) -> RealComfyUI:
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = RealComfyUI(url=url, base=base, port=port, custom_nodes=custom_nodes)
    server.start()
    return server
