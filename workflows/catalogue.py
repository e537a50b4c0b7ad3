"""A server's node catalogue (``GET /object_info``), read into typed node definitions.

Two combo encodings exist: classic nodes write ``[["a", "b"], {...}]``, V3 nodes write
``["COMBO", {"options": ["a", "b"], ...}]``. Both become ``InputSpec(type="COMBO", choices=...)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_INPUT_NAMES = frozenset({"seed", "noise_seed"})
# Combo flags that make the editor add an upload button widget after the required inputs.
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")


@dataclass(frozen=True)
class InputSpec:
    name: str
    section: Literal["required", "optional"]
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[Any, ...] | None = None
    # A V3 combo may be multi-select: its value is then a list of choices, not a link.
    multiselect: bool = False

    @property
    def is_widget(self) -> bool:
        """Whether the editor shows this input as a widget (its value sits in widgets_values)."""
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def has_control_widget(self) -> bool:
        """Whether the editor adds a ``control_after_generate`` widget right after this one."""
        if self.type not in ("INT", "FLOAT") or not self.is_widget:
            return False
        if "control_after_generate" in self.options:
            return bool(self.options["control_after_generate"])
        return self.type == "INT" and self.name in SEED_INPUT_NAMES

    @property
    def upload_flag(self) -> str | None:
        if self.type != "COMBO":
            return None
        return next((flag for flag in UPLOAD_FLAGS if self.options.get(flag)), None)


@dataclass(frozen=True)
class NodeDef:
    class_type: str
    inputs: dict[str, InputSpec]
    hidden: frozenset[str]
    outputs: tuple[Any, ...]
    output_names: tuple[str, ...]
    output_node: bool
    display_name: str

    @property
    def required(self) -> list[InputSpec]:
        return [spec for spec in self.inputs.values() if spec.section == "required"]


def _parse_input(name: str, section: Literal["required", "optional"], raw: Any) -> InputSpec:
    if isinstance(raw, str):  # some nodes write a bare type, e.g. hidden "PROMPT"
        raw = [raw]
    if not isinstance(raw, list | tuple) or not raw:
        return InputSpec(name, section, "*")
    kind = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    if isinstance(kind, list | tuple):
        return InputSpec(name, section, "COMBO", options, tuple(kind))
    if kind == "COMBO":
        choices = options.get("options")
        return InputSpec(
            name,
            section,
            "COMBO",
            options,
            tuple(choices) if isinstance(choices, list | tuple) else None,
            multiselect=bool(options.get("multiselect", False)),
        )
    return InputSpec(name, section, str(kind), options)


def parse_node_def(class_type: str, raw: Mapping[str, Any]) -> NodeDef:
    raw_inputs = raw.get("input") or {}
    order = raw.get("input_order") or {}
    inputs: dict[str, InputSpec] = {}
    for section in ("required", "optional"):
        declared = raw_inputs.get(section) or {}
        # input_order is what the editor follows; fall back to the dict's own order.
        names = [n for n in order.get(section, []) if n in declared]
        names += [n for n in declared if n not in names]
        for name in names:
            inputs[name] = _parse_input(name, section, declared[name])
    outputs = tuple(raw.get("output") or ())
    output_names = tuple(raw.get("output_name") or ())
    return NodeDef(
        class_type=class_type,
        inputs=inputs,
        hidden=frozenset((raw_inputs.get("hidden") or {}).keys()),
        outputs=outputs,
        output_names=output_names,
        output_node=bool(raw.get("output_node", False)),
        display_name=str(raw.get("display_name") or class_type),
    )


def unwrap_object_info(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept the bare ``/object_info`` body or a captured ``{"status", "body"}`` sample."""
    if set(data.keys()) == {"status", "body"} and isinstance(data["body"], Mapping):
        return data["body"]
    return data


def load_object_info(path: str | Path) -> dict[str, Any]:
    """Read an ``/object_info`` answer saved as JSON (bare or wrapped as a captured sample)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: /object_info must be a JSON object of node definitions")
    return dict(unwrap_object_info(data))


class Catalogue:
    """Node definitions a server offers, parsed on first use."""

    def __init__(self, object_info: Mapping[str, Any] | Catalogue) -> None:
        if isinstance(object_info, Catalogue):
            self._raw: Mapping[str, Any] = object_info._raw
        else:
            self._raw = unwrap_object_info(object_info)
        self._parsed: dict[str, NodeDef] = {}

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and isinstance(self._raw.get(class_type), Mapping)

    def __len__(self) -> int:
        return len(self._raw)

    def get(self, class_type: str) -> NodeDef | None:
        if class_type not in self:
            return None
        if class_type not in self._parsed:
            self._parsed[class_type] = parse_node_def(class_type, self._raw[class_type])
        return self._parsed[class_type]


CUSTOM_NODE_DEFS = Path(__file__).parent / "node_defs" / "custom_nodes.json"


def custom_node_definitions() -> dict[str, Any]:
    """``/object_info`` entries of the custom-pack nodes the templates use (IPAdapter_plus,
    AnimateDiff-Evolved), transcribed from their sources; model lists are empty."""
    return load_object_info(CUSTOM_NODE_DEFS)
