"""Loading the face models: real InsightFace loading of local files, clear errors, no download."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import onnxruntime
import pytest

from blocks.scoring import ScoringModels
from tasks.scoring import face_embedder
from tasks.scoring.face_embedder import (
    MODEL_ZOO_URL,
    FaceEmbedder,
    FaceModelUnavailable,
    InsightFaceEmbedder,
    load_face_embedder,
    onnx_providers,
)
from tasks.scoring.loading.errors import ModelUnavailable


def test_the_pack_address_in_errors_is_insightfaces_own() -> None:
    # Written out so that naming a missing pack does not import insightface (1.3 s of CPU).
    import insightface.utils.storage as storage

    assert MODEL_ZOO_URL == storage.MODEL_ZOO_RELEASE_DOWNLOAD_URL
    assert f"{MODEL_ZOO_URL}buffalo_l.zip" == storage.model_zoo_download_url("buffalo_l.zip")
    assert face_embedder.pack_url("buffalo_l") == storage.model_zoo_download_url("buffalo_l.zip")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails the test at once instead of hanging offline."""
    import insightface.utils.storage as storage

    def refuse(*args, **kwargs):
        raise AssertionError(f"network use attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(storage, "download_file", refuse)


def test_the_tiny_pack_loads_as_insightface_scrfd_and_arcface(embedder):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(embedder, FaceEmbedder)
    assert isinstance(embedder.detector, SCRFD)
    assert isinstance(embedder.recognizer, ArcFaceONNX)
    assert embedder.name == "insightface:tiny_pack"
    assert embedder.providers == ["CPUExecutionProvider"]
    sessions = [embedder.detector.session, embedder.recognizer.session]
    assert all(s.get_providers() == ["CPUExecutionProvider"] for s in sessions)


def test_models_are_loaded_once_per_process_and_config(scoring_models, embedder):
    assert load_face_embedder(scoring_models) is embedder
    same_config = ScoringModels(**scoring_models.model_dump(exclude={"block_type_slug"}))
    assert load_face_embedder(same_config) is embedder
    stricter = load_face_embedder(scoring_models, det_thresh=0.9)
    assert stricter is not embedder
    assert stricter.detector.det_thresh == 0.9


def test_missing_pack_is_one_clear_error_without_download(tmp_path, no_network):
    models = ScoringModels(face_model="buffalo_l", face_root=str(tmp_path))
    with pytest.raises(FaceModelUnavailable) as caught:
        load_face_embedder(models)
    assert isinstance(caught.value, ModelUnavailable)  # one except for every scoring model
    message = str(caught.value)
    assert message.startswith("InsightFace pack 'buffalo_l': folder not found")
    assert str(tmp_path / "models" / "buffalo_l") in message
    assert "det_10g.onnx" in message and "w600k_r50.onnx" in message
    assert "buffalo_l.zip" in message  # where to get it
    assert "ScoringModels.face_model" in message  # or how to point elsewhere
    assert not (tmp_path / "models").exists()  # nothing created, nothing fetched


def test_missing_folder_path_names_the_folder(tmp_path, no_network):
    missing = tmp_path / "anime_faces"
    with pytest.raises(FaceModelUnavailable, match=r"folder not found: .*anime_faces/ \(to hold"):
        load_face_embedder(ScoringModels(face_model=str(missing)))


def test_folder_without_recognition_model_says_what_is_missing(tmp_path, face_pack, no_network):
    folder = tmp_path / "half_pack"
    folder.mkdir()
    shutil.copy(face_pack / "det_tiny.onnx", folder)
    with pytest.raises(FaceModelUnavailable) as caught:
        load_face_embedder(ScoringModels(face_model=str(folder)))
    message = str(caught.value)
    assert "no recognition model" in message and "det_tiny.onnx" in message
    assert "detection model" not in message.split("(found")[0]  # the detector was found


def test_empty_folder_lists_both_models_missing(tmp_path, no_network):
    with pytest.raises(FaceModelUnavailable, match="no detection and no recognition model"):
        load_face_embedder(ScoringModels(face_model=str(tmp_path)))


def test_unreadable_model_file_names_the_file(tmp_path, no_network):
    (tmp_path / "det_broken.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(FaceModelUnavailable, match="cannot load .*det_broken.onnx"):
        load_face_embedder(ScoringModels(face_model=str(tmp_path)))


def test_insightface_manifest_package_loads(tmp_path, face_pack):
    folder = tmp_path / "manifest_pack"
    shutil.copytree(face_pack, folder)
    (folder / "MODEL.LICENSE").write_text("test models\n")
    manifest = {
        "manifest_version": 2,
        "model_id": "tiny_manifest",
        "license": "MODEL.LICENSE",
        "tasks": {
            "detection": {"file": "det_tiny.onnx"},
            "recognition": {"file": "rec_tiny.onnx"},
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = InsightFaceEmbedder(folder, det_size=256)
    assert loaded.detector.taskname == "detection"
    assert loaded.recognizer.taskname == "recognition"


def test_cpu_device_uses_only_the_cpu_provider():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
    reason="this onnxruntime has CUDA",
)
def test_cuda_request_without_cuda_runs_on_cpu_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(face_embedder, "_warned_cpu_fallback", False)
    assert onnx_providers("auto") == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger=face_embedder.__name__):
        assert onnx_providers("cuda") == ["CPUExecutionProvider"]
        assert onnx_providers("cuda") == ["CPUExecutionProvider"]
    warnings = [r for r in caplog.records if "face models run on CPU" in r.getMessage()]
    assert len(warnings) == 1
    assert "onnxruntime-gpu" in warnings[0].getMessage()


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        onnx_providers("tpu")  # type: ignore[arg-type]


def test_the_pack_folder_is_the_one_under_face_root(tmp_path, face_pack):
    root = tmp_path / "insightface_root"
    shutil.copytree(face_pack, root / "models" / "studio_pack")
    loaded = load_face_embedder(
        ScoringModels(face_model="studio_pack", face_root=str(root), face_det_size=256)
    )
    assert Path(loaded.folder) == (root / "models" / "studio_pack").resolve()
    assert loaded.name == "insightface:studio_pack"
