"""Prompt validation the way ComfyUI's `validate_prompt` does it, driven by `/object_info`.

The error bodies (types, messages, details, extra_info) follow the captured answers in
`samples/prompt_post_validation_errors.json`, so a client tested against this server meets
the same 400s it will meet on a real ComfyUI.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# (input name, value) -> a failure message, or None when the value is fine.
CustomValidator = Callable[[str, Any], str | None]

WIDGET_CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str}
# ComfyUI stops listing choices in an error past this many (model folders can be huge).
MAX_LISTED_CHOICES = 20


class NodeCatalog:
    """Node definitions from `/object_info`, with extra combo choices (e.g. model files)."""

    def __init__(
        self,
        object_info: Mapping[str, Any],
        extra_choices: Mapping[str, list[str]] | None = None,
        custom_validators: Mapping[str, CustomValidator] | None = None,
    ) -> None:
        self.object_info: dict[str, Any] = copy.deepcopy(dict(object_info))
        # Nodes with their own VALIDATE_INPUTS: ComfyUI skips the combo check for them.
        self.custom_validators: dict[str, CustomValidator] = dict(custom_validators or {})
        for definition in self.object_info.values():
            for section in ("required", "optional"):
                for name, spec in definition.get("input", {}).get(section, {}).items():
                    if extra_choices and name in extra_choices:
                        _extend_choices(spec, extra_choices[name])

    def get(self, class_type: str) -> dict[str, Any] | None:
        return self.object_info.get(class_type)

    def is_output_node(self, class_type: str) -> bool:
        definition = self.get(class_type)
        return bool(definition and definition.get("output_node"))

    def return_types(self, class_type: str) -> list[Any]:
        definition = self.get(class_type) or {}
        return list(definition.get("output", []))

    def inputs(self, class_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
        definition = self.get(class_type) or {}
        spec = definition.get("input", {})
        return dict(spec.get("required", {})), dict(spec.get("optional", {}))


def _extend_choices(spec: list[Any], extra: list[str]) -> None:
    if isinstance(spec[0], list):
        spec[0] = spec[0] + [c for c in extra if c not in spec[0]]
    elif spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].setdefault("options", [])
        options.extend(c for c in extra if c not in options)


def combo_choices(spec: list[Any]) -> list[Any] | None:
    """The allowed values of a combo input (legacy `[[...], {...}]` or V3 `["COMBO", {...}]`)."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return list((spec[1] if len(spec) > 1 else {}).get("options", []))
    return None


def _types_match(received: Any, expected: Any) -> bool:
    if isinstance(expected, list) or expected == "COMBO":
        return isinstance(received, list) or received in ("COMBO", "*")
    if received == "*" or expected == "*":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool(set(received.split(",")) & set(expected.split(",")))


@dataclass
class ValidationOutcome:
    ok: bool
    error: dict[str, Any] | None = None
    good_outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "node_errors": self.node_errors}


def _invalid_prompt(message: str, details: str) -> ValidationOutcome:
    error = {"type": "invalid_prompt", "message": message, "details": details, "extra_info": {}}
    return ValidationOutcome(ok=False, error=error)


def _exception_reason(kind: str, message: str, ex: BaseException) -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "details": str(ex),
        "extra_info": {
            "exception_type": _full_type_name(type(ex)),
            "traceback": traceback.format_tb(ex.__traceback__),
        },
    }


def _full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


class _Validator:
    def __init__(self, prompt: dict[str, Any], catalog: NodeCatalog) -> None:
        self.prompt = prompt
        self.catalog = catalog
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def validate_node(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        required, optional = self.catalog.inputs(class_type)
        errors: list[dict[str, Any]] = []
        valid = True
        for name, info in {**required, **optional}.items():
            if name not in inputs:
                if name in required:
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
                continue
            value = inputs[name]
            if isinstance(value, list):
                link_ok = self._validate_link(node_id, name, info, value, errors)
                valid = valid and link_ok
                continue
            custom = self.catalog.custom_validators.get(class_type)
            if custom is not None:
                error = _custom_error(name, custom(name, value))
            else:
                error = self._validate_value(inputs, name, info, value)
            if error is not None:
                errors.append(error)
        result = (not errors and valid, errors)
        self.validated[node_id] = result
        return result

    def _validate_link(
        self, node_id: str, name: str, info: list[Any], value: list[Any], errors: list[Any]
    ) -> bool:
        if len(value) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_value": value,
                    },
                }
            )
            return True
        source_id, slot = str(value[0]), value[1]
        source_class = self.prompt[source_id]["class_type"]  # KeyError: dangling link
        received = self.catalog.return_types(source_class)[slot]
        if not _types_match(received, info[0]):
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({received}) mismatch input_type({info[0]})",
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_type": received,
                        "linked_node": value,
                    },
                }
            )
            return True
        try:
            ok, _ = self.validate_node(source_id)
        except Exception as ex:  # ComfyUI reports a broken upstream node on that node
            reason = _exception_reason(
                "exception_during_inner_validation", "Exception when validating inner node", ex
            )
            reason["extra_info"].update({"input_name": name, "linked_node": value})
            self.validated[source_id] = (False, [reason])
            return False
        return ok

    def _validate_value(
        self, inputs: dict[str, Any], name: str, info: list[Any], value: Any
    ) -> dict[str, Any] | None:
        type_input = info[0]
        extra = info[1] if len(info) > 1 and isinstance(info[1], dict) else {}
        converter = WIDGET_CONVERTERS.get(type_input) if isinstance(type_input, str) else None
        if converter is not None:
            try:
                value = converter(value)
                inputs[name] = value
            except Exception as ex:
                return {
                    "type": "invalid_input_type",
                    "message": f"Failed to convert an input value to a {type_input} value",
                    "details": f"{name}, {value}, {ex}",
                    "extra_info": {
                        "input_name": name,
                        "input_config": info,
                        "received_value": value,
                        "exception_message": str(ex),
                    },
                }
            if "min" in extra and value < extra["min"]:
                return _range_error("value_smaller_than_min", "smaller than min", name, info, value)
            if "max" in extra and value > extra["max"]:
                return _range_error("value_bigger_than_max", "bigger than max", name, info, value)
        choices = combo_choices(info)
        if choices is not None and value not in choices:
            shown: Any = info if len(info) > 1 else [info[0], {}]
            listed = str(choices)
            if len(choices) > MAX_LISTED_CHOICES:
                listed, shown = f"(list of length {len(choices)})", None
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{name}: '{value}' not in {listed}",
                "extra_info": {"input_name": name, "input_config": shown, "received_value": value},
            }
        return None


def _custom_error(name: str, failure: str | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": f"{name} - {failure}",
        "extra_info": {"input_name": name},
    }


def _range_error(kind: str, words: str, name: str, info: list[Any], value: Any) -> dict[str, Any]:
    limit = info[1]["min" if "min" in kind else "max"]
    return {
        "type": kind,
        "message": f"Value {value} {words} of {limit}",
        "details": name,
        "extra_info": {"input_name": name, "input_config": info, "received_value": value},
    }


def validate_prompt(prompt: Any, catalog: NodeCatalog) -> ValidationOutcome:
    """Validate an API-format graph; answers what `POST /prompt` would answer."""
    if not isinstance(prompt, dict):
        return _invalid_prompt("Prompt is not a JSON object.", type(prompt).__name__)
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return _invalid_prompt(
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        if catalog.get(node["class_type"]) is None:
            return _invalid_prompt(
                f"Cannot execute because node {node['class_type']} does not exist.",
                f"Node ID '#{node_id}'",
            )
    outputs = [n for n, node in prompt.items() if catalog.is_output_node(node["class_type"])]
    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return ValidationOutcome(ok=False, error=error)

    validator = _Validator(prompt, catalog)
    good_outputs: list[str] = []
    own_errors: list[dict[str, Any]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            valid, reasons = validator.validate_node(output)
        except Exception as ex:
            reason = _exception_reason(
                "exception_during_validation", "Exception when validating node", ex
            )
            valid, reasons = False, [reason]
            validator.validated[output] = (False, reasons)
        if valid:
            good_outputs.append(output)
            continue
        own_errors.extend(reasons)
        for node_id, (node_ok, node_reasons) in validator.validated.items():
            # Nodes downstream of a broken one are invalid without reasons of their own:
            # ComfyUI leaves them out of node_errors.
            if node_ok or not node_reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                },
            )
            if output not in entry["dependent_outputs"]:
                entry["dependent_outputs"].append(output)

    if not good_outputs:
        details = "\n".join(f"{r['message']}: {r['details']}" for r in own_errors)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return ValidationOutcome(ok=False, error=error, node_errors=node_errors)
    return ValidationOutcome(ok=True, good_outputs=good_outputs, node_errors=node_errors)
