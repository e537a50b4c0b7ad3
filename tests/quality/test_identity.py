"""Calibrated identity: `anime calibrate` stores each character's face threshold per face
model, the face gate uses it and names it, and only the active model's references count."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from anime.cli import app
from blocks.quality import QualityThresholds
from db import jobs as db_jobs
from db.briefs import load_cut_brief
from db.engine import session_scope
from db.models import (
    Character,
    CharacterReference,
    Cut,
    CutCasting,
    FaceCalibration,
    FaceEmbedding,
)
from db.production_file import load_production
from db.production_io import import_production
from db.vocabulary import Phase
from tasks.scoring.faces import main_face
from tasks.scoring.judge import decide, score_keyframe
from tests.conftest import EXAMPLE

from .conftest import canvas, face_tile

# aki's references are views of ross, ren's of joey (real faces through the tiny face pack).
PEOPLE = {"aki": "ross", "ren": "joey"}
VIEWS = [{"shift": (0, 0)}, {"shift": (2, -2)}, {"shift": (-2, 1), "gain": 1.1}]
OTHER_MODEL = "insightface:some_other_pack"


def anime(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def cast(db, embedder, t1):
    """The example production, its references embedded with the tiny pack (and aki's also
    with another model, whose vectors point elsewhere)."""
    rng = np.random.default_rng(0)
    with session_scope() as session:
        import_production(session, load_production(EXAMPLE))
        for character in session.scalars(select(Character)):
            refs = sorted(character.references, key=lambda r: r.id)
            for ref, view in zip(refs, VIEWS, strict=True):
                image = canvas((face_tile(t1, PEOPLE[character.slug], **view), (1, 1)))
                face = main_face(embedder.detect_and_embed(image))
                db_jobs.store_face_embedding(
                    session, ref.id, model_name=embedder.name, vector=face.embedding.tolist()
                )
                if character.slug == "aki":
                    junk = rng.normal(size=face.embedding.shape)
                    db_jobs.store_face_embedding(
                        session,
                        ref.id,
                        model_name=OTHER_MODEL,
                        vector=list(junk / np.linalg.norm(junk)),
                    )
    return embedder


def _aki_cut(session) -> int:
    return session.scalar(
        select(Cut.id).join(CutCasting).join(Character).where(Character.slug == "aki").limit(1)
    )


def test_calibrate_stores_a_threshold_per_character_and_model(cast) -> None:
    out = anime("calibrate", "moonlit-courier")
    assert f"aki [{cast.name}]: 0." in out and f"ren [{cast.name}]: 0." in out
    assert f"aki [{OTHER_MODEL}]: default kept" in out  # nobody else has that model's refs
    with session_scope() as session:
        rows = {
            (r.character.slug, r.model_name): r for r in session.scalars(select(FaceCalibration))
        }
    aki = rows[("aki", cast.name)]
    assert aki.references == 3 and aki.impostors == 3
    assert 0.0 < aki.threshold < 1.0
    assert rows[("aki", OTHER_MODEL)].threshold is None
    anime("calibrate", "moonlit-courier", "aki")  # again: replaced, not duplicated
    with session_scope() as session:
        assert len(list(session.scalars(select(FaceCalibration)))) == len(rows)


def test_face_gate_uses_the_calibrated_threshold_and_only_the_active_models_references(
    cast, scoring_models, t1
) -> None:
    anime("calibrate", "moonlit-courier")
    with session_scope() as session:
        brief = load_cut_brief(session, _aki_cut(session))
    aki = next(m for m in brief.cast if m.slug == "aki")
    assert set(aki.face_references) == {cast.name, OTHER_MODEL}
    render = canvas((face_tile(t1, "ross", shift=(1, 1)), (3, 4)))
    results = score_keyframe(render, brief, scoring_models, {"face_similarity"})
    [mine] = [r for r in results if r.subject == "aki"]
    assert len(mine.details["reference_cosines"]) == 3  # the other model's 3 are left out
    assert mine.value <= 1.0
    decision = decide(results, Phase.GENERATION, brief, QualityThresholds())
    threshold = aki.face_calibrations[cast.name].threshold
    [line] = [x for x in decision.lines if x.subject == "aki"]
    assert line.threshold == pytest.approx(threshold)
    assert f"calibrated threshold {threshold:.2f} from 3 references against 3 impostors" in (
        decision.explanation
    )


def test_too_few_references_keep_the_default_and_say_so(cast, scoring_models, t1) -> None:
    with session_scope() as session:
        aki = session.scalar(select(Character).where(Character.slug == "aki"))
        for ref in sorted(aki.references, key=lambda r: r.id)[1:]:
            session.delete(ref)
    out = anime("calibrate", "moonlit-courier", "aki", "--model", cast.name)
    assert "default kept" in out and "at least two" in out
    with session_scope() as session:
        brief = load_cut_brief(session, _aki_cut(session))
    render = canvas((face_tile(t1, "ross", shift=(1, 1)), (3, 4)))
    results = score_keyframe(render, brief, scoring_models, {"face_similarity"})
    decision = decide(results, Phase.GENERATION, brief, QualityThresholds())
    [line] = [x for x in decision.lines if x.subject == "aki"]
    assert line.threshold == pytest.approx(0.70)
    assert "too few to calibrate" in decision.explanation


def test_import_that_changes_references_recalibrates(cast, tmp_path) -> None:
    import shutil

    anime("calibrate", "moonlit-courier")
    folder = shutil.copytree(EXAMPLE.parent, tmp_path / "production")
    changed = folder / EXAMPLE.name
    profile = "      - {path: refs/aki-profile.png, view: profile}\n"
    changed.write_text(EXAMPLE.read_text().replace(profile, ""))
    out = anime("import", str(changed), "--prune")
    assert "face thresholds recalibrated" in out, out
    with session_scope() as session:
        row = session.scalar(
            select(FaceCalibration)
            .join(Character)
            .where(Character.slug == "aki", FaceCalibration.model_name == cast.name)
        )
        paths = list(
            session.scalars(
                select(CharacterReference.path).join(Character).where(Character.slug == "aki")
            )
        )
    # A moved copy is the same production (paths are stored relative to it): the two
    # references left keep their embeddings, and the threshold is recalibrated from them alone.
    assert len(paths) == 2
    assert row.references == 2


def _face_embeddings(session) -> dict[tuple[str, str], tuple[int, list[float]]]:
    """(character/reference path, model) -> (row id, vector) of every stored embedding."""
    rows = session.execute(
        select(Character.slug, CharacterReference.path, FaceEmbedding)
        .join(CharacterReference, FaceEmbedding.reference_id == CharacterReference.id)
        .join(Character)
    )
    return {(f"{slug}/{path}", e.model_name): (e.id, list(e.vector)) for slug, path, e in rows}


def _aki_calibration(session, model_name: str) -> FaceCalibration:
    return session.scalar(
        select(FaceCalibration)
        .join(Character)
        .where(Character.slug == "aki", FaceCalibration.model_name == model_name)
    )


def test_a_reference_replaced_at_the_same_path_is_embedded_again(
    cast, scoring_models, t1, tmp_path
) -> None:
    """Same file name, another picture: the old face must not stay the character's. The
    import drops that reference's embeddings (every model's), recalibrates without it and
    says so; the next embedding step embeds the new picture; unchanged files are left alone."""
    import shutil

    from PIL import Image

    from db.face_calibration import project_id_of
    from db.media_paths import content_sha256
    from tasks.references import embed_project_references

    anime("calibrate", "moonlit-courier")
    folder = shutil.copytree(EXAMPLE.parent, tmp_path / "production")
    copy = folder / EXAMPLE.name
    out = anime("import", str(copy))  # a moved copy, the same bytes: nothing changed
    assert "already up to date" in out and "changed content" not in out, out
    with session_scope() as session:
        before = _face_embeddings(session)
    replaced = folder / "refs" / "aki-profile.png"
    Image.fromarray(canvas((face_tile(t1, "phoebe"), (1, 1)))).save(replaced)

    out = anime("import", str(copy))
    assert "aki: 1 reference changed content; its embeddings will be recomputed" in out, out
    assert "ren:" not in out and "face thresholds recalibrated" in out, out
    gone = {key for key in before if key[0] == "aki/refs/aki-profile.png"}
    assert len(gone) == 2  # the tiny pack's and the other model's
    with session_scope() as session:
        after = _face_embeddings(session)
        assert after == {k: v for k, v in before.items() if k not in gone}
        assert _aki_calibration(session, cast.name).references == 2
        ref = session.scalar(
            select(CharacterReference).where(CharacterReference.path == "refs/aki-profile.png")
        )
        assert ref.sha256 == content_sha256(replaced)
        # What an episode run does first: embed what has no embedding, then calibrate.
        message = embed_project_references(
            session, project_id_of(session, "moonlit-courier"), scoring_models
        )
    assert f"embedded 1 reference image(s) with {cast.name}" in message, message
    with session_scope() as session:
        embedded = _face_embeddings(session)
        assert _aki_calibration(session, cast.name).references == 3
    key = ("aki/refs/aki-profile.png", cast.name)
    new_id, new_vector = embedded[key]
    old_id, old_vector = before[key]
    assert new_id != old_id and float(np.dot(new_vector, old_vector)) < 0.9  # phoebe, not ross

    out = anime("import", str(copy))  # again, nothing replaced: nothing dropped or embedded
    assert "already up to date" in out and "changed content" not in out, out
    with session_scope() as session:
        assert _face_embeddings(session) == embedded


def test_calibrate_names_an_unknown_character_or_project(cast) -> None:
    out = anime("calibrate", "moonlit-courier", "nobody", code=1)
    assert "no character 'nobody'" in out and "aki" in out
    out = anime("calibrate", "no-such-project", code=1)
    assert "no project 'no-such-project'" in out


def test_calibrate_warns_when_the_threshold_fails_the_characters_own_references(db) -> None:
    vectors = {
        "aki": [[1, 0, 0], [0.99, 0.14, 0], [0, 0, 1]],  # the third is not like the others
        "ren": [[0.5, 0.866, 0], [0, 1, 0], [0, 1, 0]],
    }
    with session_scope() as session:
        import_production(session, load_production(EXAMPLE))
        for character in session.scalars(select(Character)):
            refs = sorted(character.references, key=lambda r: r.id)
            for ref, vector in zip(refs, vectors[character.slug], strict=True):
                db_jobs.store_face_embedding(session, ref.id, model_name="m", vector=vector)
    result = CliRunner().invoke(app, ["calibrate", "moonlit-courier", "aki"])
    assert result.exit_code == 0, result.output
    assert "warning: this threshold fails 1 of aki's own 3 references" in result.output


def test_a_sheet_image_that_cannot_be_read_is_could_not_judge(scoring_models, tmp_path) -> None:
    from tasks.judging import score_sheet

    missing = [str(tmp_path / "front.png"), str(tmp_path / "side.png")]
    judgement, [result], _ = score_sheet(
        missing, ["front", "side"], QualityThresholds(), scoring_models
    )
    assert judgement.verdict.value == "could_not_judge"
    assert result.value is None and "FileNotFoundError" in result.reason


def test_calibrate_warns_about_references_the_aesthetic_gate_would_reject(
    cast, prefect_harness, tmp_path, monkeypatch
) -> None:
    """A style (or character) reference below the aesthetic gate: keyframes that look like
    what the production asked for would be rejected. One line per file, naming the value and
    the gate; the references above it are not named."""
    import uuid
    import warnings

    from blocks.quality import MetricGate
    from db.briefs import production_references
    from db.models import Project
    from tasks.scoring.aesthetic import aesthetic_batch
    from tests.scoring.stand_in_models import write_stand_in_models

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the scores it remembers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = write_stand_in_models(tmp_path / "models")
    with session_scope() as session:
        project_id = session.scalar(select(Project.id).where(Project.slug == "moonlit-courier"))
        references = production_references(session, project_id)
    assert [kind for kind, _ in references][:2] == ["style reference", "style reference"]
    scores = [r.value for r in aesthetic_batch([p for _, p in references], models)]
    threshold = float(np.median(scores))  # half the references fail, half pass
    suffix = uuid.uuid4().hex[:8]
    gates = {"aesthetic": MetricGate(threshold=threshold)}
    QualityThresholds(phase_gates={"generation": gates}).save(f"refs-{suffix}", overwrite=True)
    models.save(f"refs-models-{suffix}", overwrite=True)

    result = CliRunner().invoke(
        app,
        ["calibrate", "moonlit-courier", "--thresholds-block", f"refs-{suffix}",
         "--scoring-block", f"refs-models-{suffix}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    failing = [(ref, s) for ref, s in zip(references, scores, strict=True) if s < threshold]
    assert failing and len(failing) < len(references)
    assert len(warned) == len(failing)
    for ((kind, path), score), line in zip(failing, warned, strict=True):
        assert f"{kind} {path}: aesthetic {score:.2f} fails the generation gate" in line
        assert f">= {threshold:g}" in line
    # Without the models, the references are said to be unchecked, and calibration still runs.
    offline = models.model_copy(update={"aesthetic_head": str(tmp_path / "missing.pth")})
    offline.save(f"refs-offline-{suffix}", overwrite=True)
    result = CliRunner().invoke(
        app, ["calibrate", "moonlit-courier", "--scoring-block", f"refs-offline-{suffix}"]
    )
    assert result.exit_code == 0, result.output
    assert "note: reference images not checked against the gates:" in result.output
    assert "missing.pth" in result.output
