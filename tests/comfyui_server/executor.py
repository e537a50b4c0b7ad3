"""Running one prompt: the message sequence of ComfyUI's prompt worker, with real node work.

Sequence for a prompt posted with a client_id (samples/ws_basic_sequence.json):
status -> execution_start -> execution_cached -> per node (progress_state, executing,
progress..., executed for output nodes, progress_state) -> execution_success | execution_error
| execution_interrupted -> [history written] -> status -> executing {node: null}.

Deliberate difference from a real server: every executed node spends an equal share of
`render_time_s` in `progress_steps` ticks and reports each tick as `progress` (a real server
reports progress from samplers and a few other nodes only). Interrupts land at those ticks
and between nodes, as on a real server.
"""

from __future__ import annotations

import asyncio
import json
import struct
import traceback
from typing import Any

import numpy as np

from .nodes import NODES, NodeCall, NodeResult, digest_of, fallback
from .state import ComfyState, Run, now_ms


class Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id


class NodeFailed(Exception):
    def __init__(self, node_id: str, error: BaseException, inputs: dict[str, Any]) -> None:
        self.node_id = node_id
        self.error = error
        self.inputs = inputs


class InjectedFailure(Exception):
    """Raised by `Faults.execution_error`; reported with the configured exception type."""


def signatures(prompt: dict[str, Any]) -> dict[str, bytes]:
    """Cache keys: a node's class and inputs, links replaced by the upstream signature."""
    result: dict[str, bytes] = {}

    def sig(node_id: str, trail: frozenset[str]) -> bytes:
        if node_id in result:
            return result[node_id]
        if node_id in trail:
            raise ValueError(f"cycle through node {node_id}")
        node = prompt[node_id]
        parts: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            if _is_link(value) and str(value[0]) in prompt:
                parts[name] = ["link", sig(str(value[0]), trail | {node_id}).hex(), value[1]]
            else:
                parts[name] = value
        result[node_id] = digest_of(node["class_type"], parts)
        return result[node_id]

    for node_id in prompt:
        sig(node_id, frozenset())
    return result


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id].get("inputs", {}).values():
            if _is_link(value):
                visit(str(value[0]))
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    if isinstance(value, np.ndarray):
        return f"<array {'x'.join(map(str, value.shape))}>"
    return str(value)


class PromptRun:
    def __init__(self, state: ComfyState, run: Run) -> None:
        self.state = state
        self.run = run
        item = run.item
        self.prompt_id = item.prompt_id
        self.prompt = item.prompt
        self.sid: str | None = item.extra_data.get("client_id")
        self.messages: list[list[Any]] = []
        self.values: dict[str, tuple[Any, ...]] = {}
        self.ui_outputs: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.progress_nodes: dict[str, dict[str, Any]] = {}

    # -- messages --------------------------------------------------------------------------
    def send(self, event: str, data: dict[str, Any], *, record: bool = False) -> None:
        if record:
            self.messages.append([event, data])
        if self.sid is not None:  # without a client_id nobody hears about execution
            self.state.send(event, data, self.sid)

    def progress_state(self, node_id: str, value: float, maximum: float, state: str) -> None:
        self.progress_nodes[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {k: dict(v) for k, v in self.progress_nodes.items()}
        self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def send_frame(self, png: bytes, node_id: str) -> None:
        if self.sid is None or self.sid not in self.state.sockets:
            return
        connection = self.state.sockets[self.sid]
        if connection.supports_preview_metadata:
            metadata = json.dumps(
                {
                    "node_id": node_id,
                    "prompt_id": self.prompt_id,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                    "image_type": "image/png",
                }
            ).encode()
            payload = struct.pack(">II", 4, len(metadata)) + metadata + png
        else:
            payload = struct.pack(">II", 1, 2) + png
        self.state.send_bytes(payload, self.sid)

    # -- execution -------------------------------------------------------------------------
    async def execute(self) -> None:
        state = self.state
        state.count(prompts_executed=1)
        start = {"prompt_id": self.prompt_id, "timestamp": now_ms()}
        self.send("execution_start", start, record=True)
        sigs = signatures(self.prompt)
        use_cache = state.cache_enabled
        cached = [n for n in self.prompt if use_cache and sigs[n] in state.cache]
        cached_msg = {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()}
        self.send("execution_cached", cached_msg, record=True)
        order = execution_order(self.prompt, self.run.item.outputs)
        to_compute = [n for n in order if n not in cached]
        self.node_time = state.render_time_s / max(1, len(to_compute))
        # Ticks sleep until deadlines counted from the start, not for fixed spans: a prompt's
        # execution then takes `render_time_s` (work included, when it fits), however many
        # ticks and however late the loop wakes, so benchmarks can compare with N*T/K.
        self.started_at = asyncio.get_running_loop().time()
        new_cache: dict[bytes, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        outcome: str
        try:
            for node_id in order:
                if self.run.interrupted:
                    raise Interrupted(node_id)
                if node_id in cached:
                    outputs, ui = state.cache[sigs[node_id]]
                    self.values[node_id] = outputs
                    new_cache[sigs[node_id]] = (outputs, ui)
                    if ui:
                        self.ui_outputs[node_id] = ui
                        self.send_executed(node_id, ui)
                        self.progress_state(node_id, 1, 1, "finished")
                    continue
                result = await self.execute_node(node_id, sigs[node_id])
                self.values[node_id] = result.outputs
                new_cache[sigs[node_id]] = (result.outputs, result.ui)
            done = {"prompt_id": self.prompt_id, "timestamp": now_ms()}
            self.send("execution_success", done, record=True)
            outcome = "success"
        except Interrupted as stop:
            data = {
                "prompt_id": self.prompt_id,
                "node_id": stop.node_id,
                "node_type": self.prompt[stop.node_id]["class_type"],
                "executed": list(self.executed),
                "timestamp": now_ms(),
            }
            self.messages.append(["execution_interrupted", data])
            state.send("execution_interrupted", data, None)  # every socket hears this one
            outcome = "error"
        except NodeFailed as failure:
            self.report_failure(failure)
            outcome = "error"
        if use_cache:
            state.cache = new_cache
        self.finish(outcome)

    async def execute_node(self, node_id: str, digest: bytes) -> NodeResult:
        state = self.state
        node = self.prompt[node_id]
        class_type = node["class_type"]
        self.progress_state(node_id, 0.0, 1.0, "running")
        self.send(
            "executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}
        )
        inputs = self.resolve_inputs(node)
        call = NodeCall(
            node_id=node_id,
            class_type=class_type,
            inputs=inputs,
            digest=digest,
            prompt=self.prompt,
            extra_data=self.run.item.extra_data,
            store=state.store,
            return_types=state.catalog.return_types(class_type),
        )
        fault = state.faults.execution_error
        try:
            if fault is not None and fault.matches(node_id, class_type):
                raise InjectedFailure(fault.message)
            impl = NODES.get(class_type)
            if impl is None:
                is_output = state.catalog.is_output_node(class_type)
                result = await asyncio.to_thread(fallback, call, is_output)
            else:
                result = await asyncio.to_thread(impl, call)
        except Exception as ex:
            raise NodeFailed(node_id, ex, inputs) from ex
        steps = self.steps_for(inputs, result)
        loop = asyncio.get_running_loop()
        node_start = self.started_at + self.node_time * len(self.executed)
        for step in range(steps):
            due = node_start + self.node_time * (step + 1) / steps
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.tick()
            if self.run.interrupted:
                raise Interrupted(node_id)
            if self.state.progress_steps > 0 or result.frames:
                progress = {"value": step + 1, "max": steps, "prompt_id": self.prompt_id}
                self.send("progress", {**progress, "node": node_id})
                self.progress_state(node_id, step + 1, steps, "running")
            if step < len(result.frames):
                self.send_frame(result.frames[step], node_id)
        state.count(nodes_executed=1)
        self.executed.append(node_id)
        if result.ui:
            self.ui_outputs[node_id] = result.ui
            self.send_executed(node_id, result.ui)
        self.progress_state(node_id, 1.0, 1.0, "finished")
        return result

    def steps_for(self, inputs: dict[str, Any], result: NodeResult) -> int:
        if result.frames:
            return len(result.frames)
        steps = inputs.get("steps")
        if isinstance(steps, int) and 1 <= steps <= 1000 and self.state.progress_steps > 0:
            return steps
        return max(1, self.state.progress_steps)

    def tick(self) -> None:
        faults = self.state.faults
        self.run.ticks += 1
        if (
            faults.drop_sockets_at_tick is not None
            and self.run.ticks >= faults.drop_sockets_at_tick
        ):
            faults.drop_sockets_at_tick = None
            asyncio.get_running_loop().create_task(self.state.close_sockets(code=1001))
        if faults.restart_at_tick is not None and self.run.ticks >= faults.restart_at_tick:
            faults.restart_at_tick = None
            self.state.schedule_restart(faults.restart_downtime_s)

    def send_executed(self, node_id: str, ui: dict[str, Any]) -> None:
        data = {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}
        self.send("executed", data)

    def resolve_inputs(self, node: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            if _is_link(value):
                inputs[name] = self.values[str(value[0])][value[1]]
            else:
                inputs[name] = value
        return inputs

    def report_failure(self, failure: NodeFailed) -> None:
        error = failure.error
        fault = self.state.faults.execution_error
        if isinstance(error, InjectedFailure) and fault is not None:
            exception_type = fault.exception_type
        else:
            module = type(error).__module__
            name = type(error).__qualname__
            exception_type = name if module == "builtins" else f"{module}.{name}"
            if "tests.comfyui_server" in exception_type or "comfyui_server" in module:
                exception_type = name
        data = {
            "prompt_id": self.prompt_id,
            "node_id": failure.node_id,
            "node_type": self.prompt[failure.node_id]["class_type"],
            "executed": list(self.executed),
            # ComfyUI appends tips (e.g. for out-of-memory) after a newline, even when empty.
            "exception_message": f"{error}\n",
            "exception_type": exception_type,
            "traceback": traceback.format_tb(error.__traceback__),
            "current_inputs": {k: [_format_value(v)] for k, v in failure.inputs.items()},
            "current_outputs": list(self.values),
            "timestamp": now_ms(),
        }
        self.send("execution_error", data, record=True)

    def finish(self, outcome: str) -> None:
        state = self.state
        item = self.run.item
        meta = {
            node_id: {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            for node_id in self.ui_outputs
        }
        entry = {
            "prompt": item.as_list(),
            "outputs": self.ui_outputs,
            "status": {
                "status_str": outcome,
                "completed": outcome == "success",
                "messages": self.messages,
            },
            "meta": meta,
        }
        # ComfyUI writes history and drops the prompt from the running list in one step,
        # then tells the sockets: a client never sees a prompt in neither place.
        state.write_history(self.prompt_id, entry)
        state.running.pop(item.seq, None)
        state.count(prompts_completed=1)
        state.queue_updated()
        self.send("executing", {"node": None, "prompt_id": self.prompt_id})


async def run_prompt(state: ComfyState, run: Run) -> None:
    await PromptRun(state, run).execute()
