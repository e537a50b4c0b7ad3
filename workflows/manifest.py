"""Template manifests: named parameters, their types/ranges/defaults, and the node inputs they fill.

A manifest (``<name>.manifest.yaml`` beside ``<name>.json``) looks like::

    name: keyframe
    version: 1
    description: ...
    phase: generation
    kind: image
    output_nodes: ["14"]
    parameters:
      seed:
        type: int
        required: true
        min: 0
        max: 18446744073709551615
        bind: [{node: "12", input: seed}]

Parameter types: ``int``, ``float``, ``str``, ``bool``, ``image`` (a file name in the server's
input folder), ``loras`` (a list of LoRAs filling LoraLoader slots; unused slots are bypassed)
and ``controlnet`` (one ControlNet apply node with its loader and control image, or none).
An optional parameter left unset bypasses the nodes listed in ``when_unset``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ParamType = Literal["int", "float", "str", "bool", "image", "loras", "controlnet"]
Phase = Literal["concept", "generation", "animation", "quality", "any"]
Kind = Literal["image", "image_set", "animation", "video"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SCALARS = ("int", "float", "str", "bool", "image")


def check_input_file_name(value: str) -> str:
    """A file in the server's input folder (sub/folder/name.png), never a path out of it."""
    if not value.strip():
        raise ValueError("expected an image file name, got an empty string")
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise ValueError(
            f"image {value!r} must be a name inside the server's input folder, not a path"
        )
    return value


class LoraSpec(BaseModel):
    """One LoRA: the file on the server and its strengths (LoraLoader's own limits)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    strength_model: float = Field(default=1.0, ge=-100.0, le=100.0)
    strength_clip: float = Field(default=1.0, ge=-100.0, le=100.0)


class ControlNetSpec(BaseModel):
    """A ControlNet: model file, control image (already in the input folder), strength, range."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    image: str = Field(min_length=1)
    strength: float = Field(default=1.0, ge=0.0, le=10.0)
    start_percent: float = Field(default=0.0, ge=0.0, le=1.0)
    end_percent: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("image")
    @classmethod
    def _input_file(cls, value: str) -> str:
        return check_input_file_name(value)

    @model_validator(mode="after")
    def _range_ordered(self) -> ControlNetSpec:
        if self.start_percent > self.end_percent:
            raise ValueError("start_percent must not exceed end_percent")
        return self


class Binding(BaseModel):
    """Where a parameter's value goes: a node input (or a whole node for loras/controlnet)."""

    model_config = ConfigDict(extra="forbid")

    node: str
    input: str | None = None
    # For str parameters: the text written is format.format(value=...), e.g. "{value}, back view".
    format: str | None = None
    # Derived values: color_from_seed turns an int seed into a 24-bit RGB colour.
    transform: Literal["color_from_seed"] | None = None

    @field_validator("node", mode="before")
    @classmethod
    def _node_id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ParameterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ParamType
    description: str = Field(min_length=1)
    default: Any = None
    required: bool = False
    # int | float keeps big ints exact (a seed's max is 2**64 - 1, which a float rounds up).
    min: int | float | None = None
    max: int | float | None = None
    choices: list[str] | None = None
    bind: list[Binding] = Field(min_length=1)
    when_unset: list[str] = Field(default_factory=list)

    @field_validator("when_unset", mode="before")
    @classmethod
    def _node_ids_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default")
        if self.required and self.when_unset:
            raise ValueError("when_unset applies to optional parameters only")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError("min/max apply to int and float parameters only")
        if self.choices is not None and self.type != "str":
            raise ValueError("choices apply to str parameters only")
        for binding in self.bind:
            if self.type in _SCALARS and binding.input is None:
                raise ValueError(f"binding to node {binding.node} needs an input name")
            if self.type not in _SCALARS and binding.input is not None:
                raise ValueError(f"a {self.type} parameter binds whole nodes, not inputs")
            if binding.format is not None and self.type not in ("str", "image"):
                raise ValueError("format applies to str parameters only")
            if binding.transform == "color_from_seed" and self.type != "int":
                raise ValueError("color_from_seed applies to int parameters only")
        if self.type == "controlnet" and len(self.bind) != 1:
            raise ValueError("a controlnet parameter binds exactly one ControlNet apply node")
        return self


class TemplateManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    phase: Phase
    kind: Kind
    output_nodes: list[str] = Field(min_length=1)
    # Custom node packs the template needs on the server (informative; validation checks nodes).
    custom_nodes: list[str] = Field(default_factory=list)
    parameters: dict[str, ParameterSpec]

    @field_validator("output_nodes", mode="before")
    @classmethod
    def _output_ids_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"parameter name {name!r} must be lower_snake_case")
        return value


def _type_name(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def coerce_value(spec: ParameterSpec, value: Any) -> Any:
    """Check ``value`` against the parameter's type and range; return the value to write.

    Raises ``ValueError`` with a message that reads well after "parameter 'x': ".
    """
    kind = spec.type
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected int, got {_type_name(value)}")
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise ValueError(f"expected int, got non-integer {value!r}")
            value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected float, got {_type_name(value)}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite float, got {value!r}")
        value = float(value)
    elif kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected str, got {_type_name(value)}")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{value!r} is not one of {spec.choices}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected bool, got {_type_name(value)}")
    elif kind == "image":
        if not isinstance(value, str):
            raise ValueError(f"expected an image file name, got {_type_name(value)}")
        value = check_input_file_name(value)
    elif kind == "loras":
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of LoRAs, got {_type_name(value)}")
        if len(value) > len(spec.bind):
            raise ValueError(
                f"{len(value)} LoRAs given but the template has {len(spec.bind)} LoRA slot(s)"
            )
        try:
            value = [LoraSpec.model_validate(item) for item in value]
        except ValidationError as exc:
            raise ValueError(f"invalid LoRA: {_first_error(exc)}") from None
    elif kind == "controlnet":
        try:
            value = ControlNetSpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"invalid ControlNet: {_first_error(exc)}") from None
    if kind in ("int", "float"):
        if spec.min is not None and value < spec.min:
            raise ValueError(f"{value!r} is below the minimum {_num(spec.min)}")
        if spec.max is not None and value > spec.max:
            raise ValueError(f"{value!r} is above the maximum {_num(spec.max)}")
    return value


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))
