"""face_similarity and sheet_consistency through the real detect -> align -> embed path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.scoring.face_embedder import DetectedFace, to_rgb_array
from tasks.scoring.faces import (
    FACE_SIMILARITY,
    SHEET_CONSISTENCY,
    assign_faces,
    embed_references,
    face_similarity,
    face_similarity_from_faces,
    main_face,
    sheet_consistency,
)

from .conftest import canvas, face_tile

# Small crop shifts and exposure changes: other "views" of the same face.
VIEWS = [
    {"shift": (0, 0)},
    {"shift": (2, -2)},
    {"shift": (-2, 1), "gain": 1.1},
    {"shift": (1, 3), "gain": 0.9},
]


@pytest.fixture(scope="module")
def refs(t1, embedder) -> dict[str, np.ndarray]:
    """Reference embeddings of three people, each from one image of them alone."""
    out = {}
    for who in ("rachel", "ross", "phoebe"):
        found = embed_references([canvas((face_tile(t1, who), (1, 1)))], embedder)
        assert found.embeddings.shape == (1, 512)
        out[who] = found.embeddings
    return out


def by_subject(results):
    return {r.subject: r for r in results}


def test_the_same_face_elsewhere_matches_its_reference(t1, embedder, refs):
    render = canvas((face_tile(t1, "rachel"), (4, 4)))
    [result] = face_similarity(render, {"rachel": refs["rachel"]}, embedder)
    assert result.metric == FACE_SIMILARITY and result.subject == "rachel"
    assert result.value == pytest.approx(1.0, abs=1e-4)
    assert result.model == "insightface:tiny_pack"
    assert result.details["bbox"] == [128.0, 128.0, 224.0, 224.0]
    assert result.details["faces_found"] == 1
    assert len(result.details["reference_cosines"]) == 1


def test_another_person_scores_clearly_lower(t1, embedder, refs):
    render = canvas((face_tile(t1, "phoebe"), (2, 2)))
    [result] = face_similarity(render, {"rachel": refs["rachel"]}, embedder)
    assert result.value is not None and result.value < 0.7


def test_an_image_without_a_face_is_no_face_found_not_zero(tmp_path, embedder, refs):
    blank = tmp_path / "blank.png"
    Image.fromarray(canvas()).save(blank)
    results = face_similarity(blank, {"rachel": refs["rachel"], "ross": refs["ross"]}, embedder)
    assert [r.subject for r in results] == ["rachel", "ross"]
    for result in results:
        assert result.value is None
        assert result.reason == "no face found"
        assert not result.measured


def test_two_faces_go_one_to_one_to_the_two_characters(t1, embedder, refs):
    render = canvas((face_tile(t1, "ross"), (0, 0)), (face_tile(t1, "rachel"), (5, 4)))
    for cast_order in (["rachel", "ross"], ["ross", "rachel"]):
        results = by_subject(face_similarity(render, {s: refs[s] for s in cast_order}, embedder))
        assert results["ross"].details["bbox"] == [0.0, 0.0, 96.0, 96.0]
        assert results["rachel"].details["bbox"] == [160.0, 128.0, 256.0, 224.0]
        assert results["ross"].details["face_index"] != results["rachel"].details["face_index"]
        assert results["ross"].value == pytest.approx(1.0, abs=1e-3)
        # at the image's edge the alignment samples a little border: close to, not exactly, 1
        assert results["rachel"].value == pytest.approx(1.0, abs=1e-3)


def test_with_more_faces_than_cast_the_character_gets_its_own_face(t1, embedder, refs):
    render = canvas((face_tile(t1, "phoebe"), (0, 0)), (face_tile(t1, "ross"), (4, 4)))
    [ross] = face_similarity(render, {"ross": refs["ross"]}, embedder)
    assert ross.details["bbox"] == [128.0, 128.0, 224.0, 224.0]
    assert ross.details["other_faces"] == [1 - ross.details["face_index"]]


def test_a_character_left_without_a_face_is_reported_not_found(t1, embedder, refs):
    render = canvas((face_tile(t1, "rachel"), (2, 2)))
    results = by_subject(
        face_similarity(render, {"ross": refs["ross"], "rachel": refs["rachel"]}, embedder)
    )
    assert results["rachel"].value == pytest.approx(1.0, abs=1e-4)
    assert results["ross"].value is None
    assert results["ross"].reason.startswith("no face found")


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_assignment_maximises_the_total_not_the_first_best_pair():
    # Greedy would give face 0 to character A (0.6) and face 1 to B (0.0): total 0.6.
    # The best total is face 0 -> B (0.5) and face 1 -> A (0.55): 1.05.
    similarity = np.array([[0.6, 0.5], [0.55, 0.0]])
    assert assign_faces(similarity) == [(1, 0), (0, 1)]

    # The same case through the scoring code, with embeddings built to give those cosines.
    faces = [
        DetectedFace((0, 0, 10, 10), 0.9, _unit([0.6, 0.5, np.sqrt(1 - 0.61)])),
        DetectedFace((20, 0, 30, 10), 0.9, _unit([0.55, 0.0, np.sqrt(1 - 0.3025)])),
    ]
    cast = {"a": np.array([[1.0, 0.0, 0.0]]), "b": np.array([[0.0, 1.0, 0.0]])}
    results = by_subject(face_similarity_from_faces(faces, cast))
    assert results["a"].details["face_index"] == 1
    assert results["a"].value == pytest.approx(0.55, abs=1e-6)
    assert results["b"].details["face_index"] == 0
    assert results["b"].value == pytest.approx(0.5, abs=1e-6)


def test_assignment_handles_rectangular_and_empty_matrices():
    assert assign_faces(np.array([[0.2, 0.9, 0.1]])) == [(0, 1)]
    assert assign_faces(np.array([[0.2], [0.9], [0.1]])) == [(1, 0)]
    assert assign_faces(np.zeros((0, 2))) == []


def test_max_takes_the_best_reference_and_mean_averages_them(t1, embedder, refs):
    mixed = np.vstack([refs["rachel"], refs["phoebe"]])
    render = canvas((face_tile(t1, "rachel"), (3, 3)))
    [best] = face_similarity(render, {"rachel": mixed}, embedder)
    [mean] = face_similarity(render, {"rachel": mixed}, embedder, reduce="mean")
    cosines = best.details["reference_cosines"]
    assert best.value == pytest.approx(max(cosines), abs=1e-5)
    assert mean.value == pytest.approx(sum(cosines) / 2, abs=1e-5)
    assert mean.value < best.value - 0.2
    assert (best.details["reduction"], mean.details["reduction"]) == ("max", "mean")


def test_a_character_without_references_cannot_be_judged(t1, embedder, refs):
    render = canvas((face_tile(t1, "rachel"), (3, 3)))
    results = by_subject(
        face_similarity(
            render, {"rachel": refs["rachel"], "newcomer": np.zeros((0, 512))}, embedder
        )
    )
    assert results["newcomer"].value is None
    assert "no reference embeddings" in results["newcomer"].reason
    assert results["rachel"].value == pytest.approx(1.0, abs=1e-4)


def test_references_from_another_model_are_refused_with_the_reason(t1, embedder):
    render = canvas((face_tile(t1, "rachel"), (3, 3)))
    with pytest.raises(ValueError, match="'rachel' have 128 dimensions .* gives 512"):
        face_similarity(render, {"rachel": np.ones((2, 128))}, embedder)


def test_sheet_of_one_face_agrees_and_a_mixed_sheet_does_not(t1, embedder):
    same = [canvas((face_tile(t1, "ross", **v), (1 + i % 3, 2))) for i, v in enumerate(VIEWS)]
    mixed = [canvas((face_tile(t1, who), (2, 2))) for who in ("rachel", "ross", "phoebe", "monica")]
    consistent = sheet_consistency(same, embedder, subject="ross")
    inconsistent = sheet_consistency(mixed, embedder, subject="ross")
    assert consistent.metric == SHEET_CONSISTENCY and consistent.subject == "ross"
    assert consistent.value >= 0.85  # the default gate
    assert inconsistent.value < 0.6
    for result in (consistent, inconsistent):
        pairs = result.details["pairs"]
        assert len(pairs) == 6
        assert result.value == pytest.approx(np.mean([p["cosine"] for p in pairs]), abs=1e-5)
        assert result.details["min"] == min(p["cosine"] for p in pairs)
        assert result.details["min_pair"]["cosine"] == result.details["min"]


def test_sheet_images_without_a_face_are_listed(t1, embedder):
    sheet = {
        "front": canvas((face_tile(t1, "joey"), (2, 2))),
        "back": canvas(),
        "three_quarter": canvas((face_tile(t1, "joey", shift=(2, 1)), (1, 1))),
    }
    result = sheet_consistency(sheet, embedder)
    assert result.details["images_without_face"] == ["back"]
    assert result.details["images"] == 3
    assert result.value is not None and result.value > 0.85


def test_a_sheet_with_one_face_cannot_be_judged(t1, embedder):
    result = sheet_consistency([canvas((face_tile(t1, "joey"), (2, 2))), canvas()], embedder)
    assert result.value is None
    assert result.reason.startswith("no face found")
    assert result.details["images_without_face"] == ["image 1"]


def test_references_from_files_keep_their_names(tmp_path, t1, embedder):
    paths = []
    for name, image in (
        ("front.png", canvas((face_tile(t1, "monica"), (2, 2)))),
        ("empty.png", canvas()),
    ):
        Image.fromarray(image).save(tmp_path / name)
        paths.append(tmp_path / name)
    found = embed_references(paths, embedder)
    assert found.labels == ["front.png"] and found.without_face == ["empty.png"]
    assert np.linalg.norm(found.embeddings, axis=1) == pytest.approx([1.0], abs=1e-5)


def test_main_face_is_the_largest():
    small = DetectedFace((0, 0, 10, 10), 0.99, _unit([1, 0]))
    large = DetectedFace((0, 0, 50, 40), 0.60, _unit([0, 1]))
    assert main_face([small, large]) is large
    assert main_face([]) is None


def test_images_are_read_as_rgb_from_any_form(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    for form in (rgb, Image.fromarray(rgb), tmp_path / "red.png", str(tmp_path / "red.png")):
        assert to_rgb_array(form)[0, 0].tolist() == [200, 0, 0]
    assert to_rgb_array(rgb.astype(np.float32) / 255.0)[0, 0].tolist() == [200, 0, 0]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        to_rgb_array(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="shape"):
        to_rgb_array(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(TypeError, match="not an image"):
        to_rgb_array(42)  # type: ignore[arg-type]
