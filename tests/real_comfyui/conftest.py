"""The real ComfyUI tier: tests against a real ComfyUI 0.3.64 (or the studio's own).

Every test here carries the `real_comfyui` marker. When neither the peer ComfyUI nor
`COMFYUI_URL` is there, they are skipped and the run prints one line saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real_comfyui.peer import RealComfyUI, launch, unavailable

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = unavailable()
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.real_comfyui)
            if why:
                item.add_marker(pytest.mark.skip(reason=why))
    if why and any(Path(str(i.fspath)).is_relative_to(HERE) for i in items):
        config.stash[_SKIPPED] = why


_SKIPPED = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    why = config.stash.get(_SKIPPED, None)
    if why:
        terminalreporter.write_line(f"real ComfyUI tier skipped: {why}")


@pytest.fixture(scope="session")
def real_comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealComfyUI]:
    """One real ComfyUI with the custom packs for the session: the peer, or COMFYUI_URL."""
    url = os.environ.get("COMFYUI_URL")
    if url:
        yield RealComfyUI(url=url.rstrip("/"))
        return
    server = launch(tmp_path_factory.mktemp("real-comfyui"), custom_nodes=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_comfyui(tmp_path: Path) -> Iterator[RealComfyUI]:
    """A peer ComfyUI of this test's own (core nodes), for tests that kill and restart it."""
    if not _peer_present():
        pytest.skip("this test kills and restarts its server: it needs the peer ComfyUI")
    server = launch(tmp_path / "own-comfyui", custom_nodes=False)
    try:
        yield server
    finally:
        server.stop()


def _peer_present() -> bool:
    from tests.real_comfyui.peer import peer_dir, peer_venv

    return (peer_dir() / "start.sh").is_file() and (peer_venv() / ".ready").is_file()
