"""The names a finished prompt's files have on the server, worked out from its graph alone
(what `render_on` looks for when a restart lost the prompt's history)."""

from __future__ import annotations

import pytest

from blocks.comfyui.saved import expected_files, output_prefix
from tasks.rendering.comfyui import probe_graph
from workflows import rebind_parameter

PROMPT_ID = "1234abcd-5678-4000-8000-000000000000"
SAVERS = {"SaveImage", "SaveAnimatedWEBP"}


@pytest.mark.parametrize(
    ("template", "frames", "clips"),
    [
        ("preview", 16, 1),
        ("keyframe", 1, 0),
        ("character_sheet", 4, 0),  # four views joined by ImageBatch
        ("animatediff_loop", 16, 1),
        ("svd_img2vid", 25, 1),
    ],
)
def test_every_shipped_template_names_its_files_after_the_prompt(
    template: str, frames: int, clips: int
) -> None:
    prefix = output_prefix("anime/demo/ep01-sc01-cut01-keyframe-a01", PROMPT_ID)
    graph = rebind_parameter(template, probe_graph(template), "filename_prefix", prefix)
    expected = expected_files(graph, PROMPT_ID, SAVERS)
    assert not isinstance(expected, str), expected
    names = [f.filename for f in expected.files]
    assert len([n for n in names if n.endswith(".png")]) == frames
    assert len([n for n in names if n.endswith(".webp")]) == clips
    assert names[0].startswith("ep01-sc01-cut01-keyframe-a01-1234abcd")
    assert names[0].endswith("_00001_.png")
    assert {f.subfolder for f in expected.files} == {"anime/demo"}


def test_what_cannot_be_named_in_advance_is_not_guessed() -> None:
    prefix = output_prefix("anime/demo/cut", PROMPT_ID)
    graph = rebind_parameter("preview", probe_graph("preview"), "filename_prefix", prefix)
    # Another prompt's prefix (a reproduction resubmits the original's graph as it is).
    assert "naming this prompt" in str(expected_files(graph, "ffffffff-0000", SAVERS))
    # A save node of a kind whose files cannot be named and verified (a video combine node).
    graph["5"]["class_type"] = "VHS_VideoCombine"
    found = expected_files(graph, PROMPT_ID, SAVERS | {"VHS_VideoCombine"})
    assert "cannot be found by name" in str(found)
    # A batch changed by a node that is not known to keep it.
    graph = rebind_parameter("preview", probe_graph("preview"), "filename_prefix", prefix)
    graph["3"]["class_type"] = "RepeatImageBatch"
    assert "how many images" in str(expected_files(graph, PROMPT_ID, SAVERS))
