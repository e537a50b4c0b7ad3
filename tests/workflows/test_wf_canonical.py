"""Canonical JSON and sha256 of the graph as submitted."""

from __future__ import annotations

import hashlib
import json

import pytest

from workflows import canonical_json, graph_sha256, render_template


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_hash_is_stable_under_key_order(full_params):
    graph = render_template("keyframe", full_params["keyframe"])
    shuffled = _reverse_keys(graph)
    assert list(shuffled) != list(graph)
    assert canonical_json(shuffled) == canonical_json(graph)
    assert graph_sha256(shuffled) == graph_sha256(graph)


def test_canonical_form_is_sorted_compact_utf8():
    graph = {"2": {"inputs": {"text": "桜の下で, café"}, "class_type": "CLIPTextEncode"}, "10": {}}
    text = canonical_json(graph)
    assert (
        text == '{"10":{},"2":{"class_type":"CLIPTextEncode","inputs":{"text":"桜の下で, café"}}}'
    )
    assert graph_sha256(graph) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert json.loads(text) == graph


def test_any_change_in_the_graph_changes_the_hash(full_params):
    base = render_template("keyframe", full_params["keyframe"])
    changed = render_template("keyframe", {**full_params["keyframe"], "cfg": 6.6})
    assert graph_sha256(base) != graph_sha256(changed)
    assert len(graph_sha256(base)) == 64


def test_values_without_a_json_form_are_refused():
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical_json({"1": {"inputs": {"cfg": float("nan")}}})
