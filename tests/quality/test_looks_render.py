"""A look change through the whole path: episode 1 before it, episode 2 after it, rendered by the
real flows on the animatic renderer and judged by the tiny face pack against each look's
references; an old render stays linked to its look when the file changes."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from blocks.comfyui import ComfyUIServer, ensure_concurrency_limits
from blocks.quality import MetricGate, QualityThresholds
from blocks.scoring import ScoringModels
from db import jobs as db_jobs
from db.engine import session_scope
from db.models import Character, Cut, Episode, Job, JobKind, JobRunStatus, QualityScore, Scene
from db.production_file import parse_production
from db.production_io import import_production
from db.storyline.tree import StoryTree, commit_sha
from flows.episode import render_episode
from tasks.scoring.faces import main_face
from tests.comfyui_server import ComfyUITestServer
from tests.comfyui_server.server import default_object_info
from workflows.catalogue import custom_node_definitions

from .conftest import CANVAS, canvas, face_tile


def production(root: Path, *, look_prompt: str = "long hair, eyepatch") -> dict:
    """Mio: her anchors are views of ross; from episode 2 (a time skip) her look replaces
    them with views of joey. Sora (views of chandler) is the impostor calibration needs."""
    cut = {"number": 1, "description": "Mio at the window", "cast": ["mio"], "frames": 4}
    cut["overrides"] = {"width": 128, "height": 128}
    return {
        "project": {"slug": "looks-short", "name": "Looks Short"},
        "characters": [
            {
                "slug": "mio",
                "name": "Mio",
                "base_prompt": "1girl, red scarf",
                "attributes": {"hair": "short"},
                "references": [{"path": "refs/mio-1.png"}, {"path": "refs/mio-2.png"}],
                "looks": [
                    {
                        "name": "time-skip",
                        "from_episode": 2,
                        "prompt": look_prompt,
                        "attributes": {"Hair": "Long"},
                        "references": [{"path": "refs/grown-1.png"}, {"path": "refs/grown-2.png"}],
                        "replaces_references": True,
                    }
                ],
            },
            {
                "slug": "sora",
                "name": "Sora",
                "references": [{"path": "refs/sora-1.png"}, {"path": "refs/sora-2.png"}],
            },
        ],
        "episodes": [
            {"number": n, "title": f"Episode {n}", "scenes": [{"number": 1, "cuts": [cut]}]}
            for n in (1, 2)
        ],
    }


def story_production(root: Path) -> dict:
    """The same two episodes, the look now taking effect from the story commit in which the
    time skip is written: episode 1 adapts the draft before it, episode 2 the version after."""
    data = production(root)
    author, chapters = "mina", []
    commits, shas = [], []
    for n, (chapter, scene) in enumerate([("before", "the-window"), ("after", "homecoming")]):
        chapters = [*chapters, {"slug": chapter, "scenes": [{"slug": scene, "text": scene}]}]
        when = datetime(2026, 11, 1 + n, tzinfo=UTC)
        tree_sha = StoryTree.model_validate({"chapters": chapters}).sha
        sha = commit_sha(tree_sha, shas[-1:], author, chapter, when)
        commits.append(
            {
                "parents": shas[-1:],
                "author": author,
                "message": chapter,
                "committed_at": when.isoformat(),
                "tree": {"chapters": chapters},
            }
        )
        shas.append(sha)
    data["stories"] = [
        {
            "slug": "mio",
            "title": "Mio",
            "commits": commits,
            "branches": [{"name": "main", "head": shas[-1]}],
        }
    ]
    data["episodes"][0].update(story_commit=f"mio@{shas[0]}")
    data["episodes"][1].update(story_commit=f"mio@{shas[1]}", story_scenes=["after"])
    look = data["characters"][0]["looks"][0]
    del look["from_episode"]
    look["from_story"] = f"mio@{shas[1][:12]}"
    return data


def import_with_faces(root: Path, data: dict, embedder) -> None:
    with session_scope() as s:
        import_production(s, parse_production(data, "looks.yaml", base_dir=root))
        refs = [r for c in s.scalars(select(Character)) for r in c.references]
        for ref in refs:
            face = main_face(embedder.detect_and_embed(np.asarray(Image.open(ref.file))))
            db_jobs.store_face_embedding(
                s, ref.id, model_name=embedder.name, vector=face.embedding.tolist()
            )


@pytest.fixture
def looks_refs(db, tmp_path, monkeypatch, t1) -> Path:
    """The production's folder with Mio's, her grown-up look's and Sora's references."""
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    root = tmp_path / "looks-short"
    (root / "refs").mkdir(parents=True)
    views = {"mio": "ross", "grown": "joey", "sora": "chandler"}
    for stem, who in views.items():
        for n, shift in ((1, (0, 0)), (2, (2, -2))):
            image = canvas((face_tile(t1, who, shift=shift), (1, 1)))
            Image.fromarray(image).save(root / "refs" / f"{stem}-{n}.png")
    return root


@pytest.fixture
def looks_short(looks_refs, embedder) -> Path:
    import_with_faces(looks_refs, production(looks_refs), embedder)
    return looks_refs


@pytest.fixture
def story_looks(looks_refs, embedder) -> Path:
    import_with_faces(looks_refs, story_production(looks_refs), embedder)
    return looks_refs


async def save_blocks(face_pack: Path) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    thresholds = QualityThresholds(
        gates={"face_similarity": MetricGate(threshold=-1.0)},
        required_metrics={"generation": ["face_similarity"], "animation": [], "quality": []},
    )
    models = ScoringModels(face_model=str(face_pack), face_det_size=CANVAS, device="cpu")
    await thresholds.save(f"looks-thresholds-{suffix}", overwrite=True)
    await models.save(f"looks-models-{suffix}", overwrite=True)
    return f"looks-thresholds-{suffix}", f"looks-models-{suffix}"


def keyframe(s, episode: int) -> Job:
    cut_id = s.scalar(select(Cut.id).join(Scene).join(Episode).where(Episode.number == episode))
    return s.scalar(select(Job).where(Job.cut_id == cut_id, Job.kind == JobKind.KEYFRAME))


async def test_before_and_after_a_look_change(looks_short, prefect_harness, face_pack):
    thresholds, models = await save_blocks(face_pack)
    for episode in (1, 2):
        state = await render_episode(
            "looks-short",
            episode,
            until="generation",
            renderer="animatic",
            thresholds_block=thresholds,
            scoring_block=models,
            return_state=True,
        )
        assert state.is_completed(), state.message

    with session_scope() as s:
        before, after = keyframe(s, 1), keyframe(s, 2)
        # Two different prompts: the look's delta and its attribute change in episode 2 only.
        assert "eyepatch" not in before.params.positive_prompt
        assert "short hair" in before.params.positive_prompt
        assert "long hair, eyepatch" in after.params.positive_prompt
        assert "short hair" not in after.params.positive_prompt
        # The template's reference image is the look's.
        [fig_before] = before.params.workflow["cast"]
        [fig_after] = after.params.workflow["cast"]
        assert Path(fig_before["reference_image"]).name == "mio-1.png"
        assert Path(fig_after["reference_image"]).name == "grown-1.png"
        # Judged against two different reference sets.
        faces = {
            job.id: s.scalar(
                select(QualityScore).where(
                    QualityScore.job_id == job.id, QualityScore.metric == "face_similarity"
                )
            )
            for job in (before, after)
        }
        key = "reference_images"
        judged = {
            job_id: (score.details["look"], [Path(p).name for p in score.details[key]])
            for job_id, score in faces.items()
        }
        assert judged[before.id] == ("base", ["mio-1.png", "mio-2.png"])
        assert judged[after.id] == ("time-skip", ["grown-1.png", "grown-2.png"])
        # The job records the look it used (none listed: the base look).
        assert [look.name for look in before.looks] == []
        assert [look.name for look in after.looks] == ["time-skip"]
        after_id, look_id = after.id, after.looks[0].id

    # A reproduction renders the stored graph again, in the same look, and records it.
    from flows.reproduce import reproduce_job

    reproduced = await reproduce_job(after_id)
    assert reproduced.identical
    with session_scope() as s:
        copy = s.get(Job, reproduced.reproduction_job_id)
        assert copy.parent_job_id == after_id and [k.id for k in copy.looks] == [look_id]

    # The file changes the look: the old render stays linked to the look row it used...
    changed = production(looks_short, look_prompt="long hair, no eyepatch any more")
    with session_scope() as s:
        import_production(s, parse_production(changed, "looks.yaml", base_dir=looks_short))
        job = s.get(Job, after_id)
        assert [look.id for look in job.looks] == [look_id]
        assert "long hair, eyepatch" in job.params.positive_prompt  # as it was rendered
    # ...and when the file drops the look, it is retired, not deleted: still linked.
    changed["characters"][0]["looks"] = []
    with session_scope() as s:
        report = import_production(s, parse_production(changed, "looks.yaml", base_dir=looks_short))
        assert "look mio/time-skip" in report.kept_absent
        [look] = s.get(Job, after_id).looks
        assert look.id == look_id and look.retired

    # `anime status` says the look each render used, not the one now planned (base for both).
    from typer.testing import CliRunner

    from anime.cli import app

    status = CliRunner().invoke(app, ["status", "looks-short"])
    assert status.exit_code == 0, status.output
    episodes = status.output.split("  episode ")[1:]
    assert "look mio: rendered in base (1 cut)" in episodes[0]
    assert "look mio: rendered in time-skip (1 cut)" in episodes[1]
    assert "planned" not in status.output


def test_calibration_is_per_look_and_a_cut_uses_its_looks(looks_short, embedder):
    from typer.testing import CliRunner

    from anime.cli import app
    from db.briefs import load_cut_brief
    from db.models import FaceCalibration

    result = CliRunner().invoke(app, ["calibrate", "looks-short"])
    assert result.exit_code == 0, result.output
    assert f"mio [{embedder.name}]" in result.output
    assert f"mio/time-skip [{embedder.name}]" in result.output
    with session_scope() as s:
        rows = {
            (row.look.name if row.look else "base"): row
            for row in s.scalars(select(FaceCalibration))
            if row.character.slug == "mio"
        }
        assert set(rows) == {"base", "time-skip"}
        assert rows["base"].references == 2 and rows["time-skip"].references == 2
        briefs = {}
        for episode in (1, 2):
            cut_id = s.scalar(
                select(Cut.id).join(Scene).join(Episode).where(Episode.number == episode)
            )
            [mio] = load_cut_brief(s, cut_id).cast
            briefs[episode] = mio.face_calibrations[embedder.name]
        assert None not in (rows["base"].threshold, rows["time-skip"].threshold)
        # Ross's two views and joey's two views are other pairs: other thresholds.
        assert rows["base"].threshold != rows["time-skip"].threshold
        assert briefs[1].threshold == rows["base"].threshold
        assert briefs[2].threshold == rows["time-skip"].threshold


async def test_a_sheet_is_rendered_per_look_and_its_approval_adds_to_that_look(
    looks_short, prefect_harness, face_pack
):
    from db.models import CharacterLook, CharacterReference
    from flows.character_sheet import character_sheet

    thresholds, models = await save_blocks(face_pack)
    for look in (None, "time-skip"):
        state = await character_sheet(
            "looks-short",
            "mio",
            renderer="animatic",
            attempt_budget=1,
            thresholds_block=thresholds,
            scoring_block=models,
            look=look,
            return_state=True,
        )
        assert state.is_completed(), state.message
    with session_scope() as s:
        jobs = {
            (job.looks[0].name if job.looks else None): job
            for job in s.scalars(select(Job).where(Job.kind == JobKind.CHARACTER_SHEET))
        }
        assert set(jobs) == {None, "time-skip"}
        # One job per character and attempt: the look's sheet numbers on after the base one's.
        assert (jobs[None].attempt, jobs["time-skip"].attempt) == (1, 2)
        names = {
            k: [Path(p).name for p in job.params.workflow["references"]] for k, job in jobs.items()
        }
        assert names[None] == ["mio-1.png", "mio-2.png"]  # each sheet drawn from its look's
        assert names["time-skip"] == ["grown-1.png", "grown-2.png"]
        look_job = jobs["time-skip"]
        outputs = [a.uri for a in look_job.artifacts]
        # What the flow stores on approval (the tiny face pack does not find faces on the
        # animatic's panels, so the sheet waits for a person; approve it as the flow would).
        views = [(p, f"view-{i}", None, "") for i, p in enumerate(outputs)]
        assert db_jobs.approve_sheet(s, look_job.id, views) == len(outputs)
        look = s.scalar(select(CharacterLook).where(CharacterLook.name == "time-skip"))
        added = s.scalars(
            select(CharacterReference).where(CharacterReference.source_job_id == look_job.id)
        ).all()
        assert added and {r.look_id for r in added} == {look.id}
    # A second run of the look's sheet finds its attempt instead of adding one.
    again = await character_sheet(
        "looks-short",
        "mio",
        renderer="animatic",
        attempt_budget=1,
        thresholds_block=thresholds,
        scoring_block=models,
        look="time-skip",
        return_state=True,
    )
    assert again.is_completed()
    with session_scope() as s:
        count = len(s.scalars(select(Job).where(Job.kind == JobKind.CHARACTER_SHEET)).all())
    assert count == 2


CHECKPOINT = "v1-5-pruned-emaonly.safetensors"  # the keyframe template's default


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_through_comfyui_the_image_uploaded_is_the_looks_reference(
    story_looks, prefect_harness, face_pack, tmp_path
):
    """The keyframe template on the project's ComfyUI test server: the reference FaceID gets
    (uploaded through /upload/image) is the look's in episode 2, which adapts the story from
    the look's commit on, and the base look's in episode 1, which adapts the draft before."""
    thresholds, models = await save_blocks(face_pack)
    object_info = {**default_object_info(), **custom_node_definitions()}
    with ComfyUITestServer(
        tmp_path / "comfy",
        render_time_s=0.01,
        cache=False,
        object_info=object_info,
        extra_choices={"ckpt_name": [CHECKPOINT]},
    ) as comfy:
        server = f"looks-comfy-{uuid.uuid4().hex[:8]}"
        block = ComfyUIServer(base_url=comfy.url, concurrency_limit_name=server)
        await block.save(server, overwrite=True)
        await ensure_concurrency_limits([block])
        for episode in (1, 2):
            state = await render_episode(
                "looks-short",
                episode,
                until="generation",
                renderer="comfyui",
                comfyui_servers=[server],
                attempt_budget=1,
                template="keyframe",
                thresholds_block=thresholds,
                scoring_block=models,
                return_state=True,
            )
            assert state.is_completed(), state.message
        on_server = {f.name: sha256_of(f) for f in (comfy.root / "input").iterdir()}
        assert comfy.stats.uploads == 2  # one image per episode, each once

    with session_scope() as s:
        for episode, looks, reference in ((1, [], "mio-1.png"), (2, ["time-skip"], "grown-1.png")):
            job = keyframe(s, episode)
            # Rendered on the server (its stand-in image shows no face: the cut waits for review).
            assert [run.status for run in job.runs] == [JobRunStatus.RENDERED]
            assert job.renderer == "comfyui" and job.comfyui_server == comfy.url
            assert [look.name for look in job.looks] == looks
            [load] = [n for n in job.params.workflow.values() if n["class_type"] == "LoadImage"]
            name = load["inputs"]["image"]
            # The bytes the server holds under the name FaceID read are the look's reference.
            assert on_server[name] == sha256_of(story_looks / "refs" / reference)
            [upload] = job.params.extra["uploads"]
            assert upload["name"] == name and Path(upload["source"]).name == reference
