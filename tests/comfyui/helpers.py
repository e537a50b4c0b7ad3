"""Helpers shared by the ComfyUI tests."""

from __future__ import annotations

from typing import Any

from blocks.comfyui import ComfyUIClient, ComfyUIServer
from tests.comfyui_server import ComfyUITestServer


def block_for(server: ComfyUITestServer, **overrides: Any) -> ComfyUIServer:
    """A block pointed at a test server, with timings scaled down to test speed."""
    settings: dict[str, Any] = {
        "base_url": server.url,
        "poll_interval_s": 0.1,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
        "render_timeout_s": 20.0,
        "unreachable_grace_s": 5.0,
    }
    settings.update(overrides)
    return ComfyUIServer(**settings)


def client_for(server: ComfyUITestServer, **overrides: Any) -> ComfyUIClient:
    """The client of a fresh block pointed at a test server (`block_for`)."""
    return block_for(server, **overrides).get_client()


def basic_graph(
    *,
    width: int = 64,
    height: int = 48,
    batch: int = 1,
    color: int = 0x112233,
    seed: int | None = None,
    prefix: str = "probe",
) -> dict[str, Any]:
    """EmptyImage -> (ImageAddNoise) -> ImageInvert -> SaveImage: the model-free render."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": batch, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }
    if seed is not None:
        graph["4"] = {
            "class_type": "ImageAddNoise",
            "inputs": {"image": ["1", 0], "seed": seed, "strength": 0.2},
        }
        graph["2"]["inputs"]["image"] = ["4", 0]
    return graph
