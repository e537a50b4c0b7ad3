"""CCIP, the anime character model, behind the same FaceEmbedder interface as InsightFace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blocks.quality import QualityThresholds
from blocks.scoring import ScoringModels
from db.briefs import CastBrief, CutBrief
from db.vocabulary import Phase
from tasks.scoring.face_embedder import FaceModelUnavailable, load_face_embedder
from tasks.scoring.faces import embed_references
from tasks.scoring.judge import decide, score_keyframe

from .conftest import canvas, face_tile
from .tiny_ccip import THRESHOLD, build_ccip_folder


@pytest.fixture(scope="module")
def ccip_models(tmp_path_factory: pytest.TempPathFactory) -> ScoringModels:
    folder = build_ccip_folder(tmp_path_factory.mktemp("ccip") / "ccip-tiny")
    return ScoringModels(face_embedder="ccip", ccip_model=str(folder), device="cpu")


def test_ccip_loads_with_the_published_threshold_as_a_cosine(ccip_models: ScoringModels) -> None:
    embedder = load_face_embedder(ccip_models)
    assert embedder.name == "ccip:ccip-tiny"
    assert embedder.threshold == pytest.approx(1 - 2 * THRESHOLD)
    image = np.zeros((576, 1024, 3), np.uint8)  # any size: resized to 384 x 384 as CCIP does
    [whole] = embedder.detect_and_embed(image + 40)
    assert whole.bbox == (0.0, 0.0, 1024.0, 576.0)
    assert np.linalg.norm(whole.embedding) == pytest.approx(1.0, abs=1e-5)


def _brief(models: ScoringModels, refs: np.ndarray, settings: dict) -> CutBrief:
    aki = CastBrief(character_id=1, slug="aki", name="Aki", face_references={models: refs.tolist()})
    return CutBrief(project_id=1, project_slug="p", project_settings=settings, episode_id=1,
                    episode_number=1, scene_id=1, scene_number=1, cut_id=1, cut_number=1,
                    cast=[aki])  # fmt: skip


def test_a_project_that_chose_ccip_is_judged_by_ccip(
    ccip_models: ScoringModels, scoring_models: ScoringModels, t1
) -> None:
    embedder = load_face_embedder(ccip_models)
    refs = embed_references([canvas((face_tile(t1, "ross"), (1, 1)))], embedder).embeddings
    brief = _brief(embedder.name, refs, {"face_embedder": "ccip"})
    # The block says InsightFace (the tiny pack); the project's settings say CCIP.
    block = scoring_models.model_copy(update={"ccip_model": ccip_models.ccip_model})
    same = canvas((face_tile(t1, "ross"), (1, 1)))
    [result] = score_keyframe(same, brief, block, {"face_similarity"})
    assert result.model == embedder.name
    assert result.value == pytest.approx(1.0, abs=1e-5) and result.value <= 1.0
    other = canvas((face_tile(t1, "joey"), (2, 2)))
    [stranger] = score_keyframe(other, brief, block, {"face_similarity"})
    assert stranger.value < result.value
    thresholds = QualityThresholds(required_metrics={"generation": ["face_similarity"]})
    decision = decide([result], Phase.GENERATION, brief, thresholds)
    [line] = [x for x in decision.lines if x.metric == "face_similarity"]
    assert line.threshold == pytest.approx(1 - 2 * THRESHOLD)
    assert "ccip:ccip-tiny's published threshold" in decision.explanation


def test_a_feature_model_of_another_signature_is_refused(tmp_path: Path) -> None:
    folder = build_ccip_folder(tmp_path / "wrong", input_name="pixel_values")
    models = ScoringModels(face_embedder="ccip", ccip_model=str(folder))
    with pytest.raises(FaceModelUnavailable, match="takes pixel_values"):
        load_face_embedder(models)


def test_missing_ccip_names_the_files_and_the_fetch_command(tmp_path: Path) -> None:
    models = ScoringModels(face_embedder="ccip", ccip_model=str(tmp_path / "absent"))
    with pytest.raises(FaceModelUnavailable) as caught:
        load_face_embedder(models)
    message = str(caught.value)
    assert "model_feat.onnx, model_metrics.onnx, metrics.json" in message
    assert "anime models fetch ccip" in message


def test_unknown_project_face_embedder_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="settings.face_embedder must be"):
        ScoringModels().for_project({"face_embedder": "arcface2"})


async def test_a_sheet_of_a_project_that_chose_ccip_is_embedded_by_ccip(
    db, ccip_models: ScoringModels, scoring_models: ScoringModels, t1, tmp_path: Path
) -> None:
    """The block says InsightFace; the project says CCIP: the sheet's views (the references an
    approval adds) are CCIP embeddings, the ones that project's face gate compares with."""
    from PIL import Image
    from sqlalchemy import select

    from db import jobs as db_jobs
    from db.engine import session_scope
    from db.models import Character, JobKind, Project
    from db.production_file import load_production
    from db.production_io import import_production
    from tasks.judging import judge_sheet
    from tasks.planning import RenderSettings
    from tests.conftest import EXAMPLE

    with session_scope() as session:
        import_production(session, load_production(EXAMPLE))
        project = session.scalar(select(Project).where(Project.slug == "moonlit-courier"))
        project.settings = {**(project.settings or {}), "face_embedder": "ccip"}
        aki = session.scalar(select(Character).where(Character.slug == "aki"))
        job, _ = db_jobs.get_or_create_job(
            session, project_id=project.id, phase=Phase.CONCEPT,
            kind=JobKind.CHARACTER_SHEET, attempt=1, character_id=aki.id,
        )  # fmt: skip
        project_id, job_id = project.id, job.id
    paths = []
    for view, shift in (("front", (0, 0)), ("side", (2, -2))):
        path = tmp_path / f"{view}.png"
        Image.fromarray(canvas((face_tile(t1, "ross", shift=shift), (1, 1)))).save(path)
        paths.append(str(path))
    block = scoring_models.model_copy(update={"ccip_model": ccip_models.ccip_model})
    settings = RenderSettings(
        renderer="comfyui", artifacts_dir=str(tmp_path), models_data=block.model_dump()
    )
    judgement = await judge_sheet.fn(job_id, paths, ["front", "side"], settings, project_id)
    assert judgement.model == "ccip:ccip-tiny"
    assert all(len(v) == 768 for v in judgement.embeddings.values())
    # Without the project's choice, the block's model (the tiny InsightFace pack) embeds them.
    plain = await judge_sheet.fn(job_id, paths, ["front", "side"], settings)
    assert plain.model.startswith("insightface:")
