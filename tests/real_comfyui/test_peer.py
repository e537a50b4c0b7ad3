"""The tier's server is a real ComfyUI with the studio's custom packs loaded."""

from __future__ import annotations

import httpx

from tests.real_comfyui.peer import RealComfyUI


def test_server_is_a_real_comfyui_with_the_custom_packs(real_comfyui: RealComfyUI) -> None:
    stats = httpx.get(f"{real_comfyui.url}/system_stats", timeout=10).json()
    assert stats["system"]["comfyui_version"]
    nodes = httpx.get(f"{real_comfyui.url}/object_info", timeout=60).json()
    assert "KSampler" in nodes and "SaveImage" in nodes
    if real_comfyui.controllable:  # the peer: both packs must have loaded
        assert "IPAdapterAdvanced" in nodes, real_comfyui.log_text()[-2000:]
        assert "ADE_AnimateDiffLoaderGen1" in nodes, real_comfyui.log_text()[-2000:]
