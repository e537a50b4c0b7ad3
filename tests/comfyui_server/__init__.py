"""A protocol-faithful ComfyUI server for tests (not a renderer; lives under tests/).

It speaks ComfyUI 0.3.64's HTTP + WebSocket protocol as captured in
`/work/shared/comfyui-protocol/samples` (copies in `samples/`): same routes (also under
`/api/...`), same message sequences, same validation error bodies, `/object_info` from the
captured 496 node types. It really executes the model-free core nodes (EmptyImage,
ImageInvert, ImageAddNoise, ImageBlur, ImageScale, batches, SaveImage, PreviewImage,
SaveAnimatedWEBP, SaveAnimatedPNG, SaveImageWebsocket, PreviewAny, ...) and writes real
PNG / WEBP files; identical graphs give identical bytes. Model nodes (checkpoint loaders,
samplers, VAE decode, ...) get stand-ins whose outputs derive from their inputs, so seeds,
prompts and sizes still change the pictures; model files exist only if you pass them in
`extra_choices`.

A fixture in three lines (`tests` is a package: `from tests.comfyui_server import ...`)::

    @pytest.fixture
    def comfy(tmp_path):
        with ComfyUITestServer(tmp_path / "comfy", render_time_s=0.1) as server:
            yield server

Then point a `blocks.comfyui.ComfyUIServer(base_url=comfy.url)` at it; make it misbehave
with `comfy.faults` (`ExecutionFault`, stalled / refused / dropped sockets, restarts at a
progress tick, 503s, chunked downloads), `comfy.restart()`, `comfy.drop_sockets()`,
`comfy.use_hostile_names([...])`; check `comfy.stats` (executed prompts, max prompts in
flight at once, ...), `comfy.history()`, `comfy.output_files()`.
"""

from .server import ComfyUITestServer, sample
from .state import ExecutionFault, Faults, ServerStats

__all__ = ["ComfyUITestServer", "ExecutionFault", "Faults", "ServerStats", "sample"]
