"""Production files: idempotent import, in-place update, all-or-nothing, export round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from db.engine import session_scope
from db.models import (
    Base,
    Character,
    CharacterVariation,
    Cut,
    CutCasting,
    Episode,
    Scene,
    StoryBible,
)
from db.production_file import ProductionFileError, dump_production, load_production
from db.production_io import export_production, import_production
from tests.conftest import EXAMPLE


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, for 'nothing changed' checks (timestamps included)."""
    out: dict[str, list[tuple]] = {}
    with session_scope() as s:
        for table in Base.metadata.sorted_tables:
            rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def do_import(path: Path, prune: bool = False):
    production = load_production(path)
    with session_scope() as s:
        return import_production(s, production, prune=prune)


@pytest.fixture
def work_copy(tmp_path: Path) -> Path:
    """The example production copied so tests can edit it."""
    target = tmp_path / "moonlit"
    shutil.copytree(EXAMPLE.parent, target)
    return target / "production.yaml"


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_first_import_creates_the_whole_production(db):
    report = do_import(EXAMPLE)
    assert report.created["cut"] == 8 and report.created["scene"] == 3
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Episode)) == 1
        two_shot = s.scalar(select(Cut).join(Scene).where(Scene.number == 3, Cut.number == 3))
        assert two_shot.overrides == {"steps": 28}
        cast = {row.character.slug: row.variations for row in two_shot.casting}
        assert cast == {
            "aki": {"outfit": "courier-jacket", "expression": "determined"},
            "ren": {"outfit": "dark-coat", "expression": "smirk"},
        }


def test_importing_the_same_file_twice_changes_nothing(db):
    do_import(EXAMPLE)
    before = snapshot()
    report = do_import(EXAMPLE)
    assert not report.changed
    assert "nothing changed" in report.summary()
    assert snapshot() == before


def test_edited_file_updates_in_place(db, work_copy):
    do_import(work_copy)
    with session_scope() as s:
        cut_ids = dict(
            s.execute(select(Cut.number, Cut.id).join(Scene).where(Scene.number == 1)).all()
        )

    def change(data):
        scene = data["episodes"][0]["scenes"][0]
        scene["cuts"][1]["frames"] = 32
        scene["cuts"].append({"number": 4, "description": "Aki leaves.", "cast": ["aki"]})
        data["characters"][0]["variations"].append(
            {"kind": "expression", "name": "laughing", "prompt": "laughing"}
        )
        data["story_bible"]["style_prompt"] += ", film grain"

    edit(work_copy, change)
    report = do_import(work_copy)
    assert report.updated["cut"] == 1 and report.created["cut"] == 1
    assert report.created["story bible version"] == 1
    with session_scope() as s:
        rows = dict(
            s.execute(select(Cut.number, Cut.id).join(Scene).where(Scene.number == 1)).all()
        )
        assert {n: rows[n] for n in cut_ids} == cut_ids, "existing cuts keep their ids"
        assert s.scalar(select(Cut.frames).where(Cut.id == cut_ids[2])) == 32
        versions = s.scalars(select(StoryBible.version).order_by(StoryBible.version)).all()
        assert versions == [1, 2], "the story bible is versioned, not overwritten"
        assert (
            s.scalar(
                select(func.count())
                .select_from(CharacterVariation)
                .where(CharacterVariation.name == "laughing")
            )
            == 1
        )


def test_removed_cut_is_kept_unless_pruned(db, work_copy):
    do_import(work_copy)
    edit(work_copy, lambda d: d["episodes"][0]["scenes"][1]["cuts"].pop())
    report = do_import(work_copy)
    assert report.kept_absent == ["episode 1 scene 2 cut 2"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Cut)) == 8
    report = do_import(work_copy, prune=True)
    assert report.removed["cut"] == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Cut)) == 7


BROKEN_CASES = [
    (
        lambda d: d["episodes"][0]["scenes"][2]["cuts"][1].update(frames=0),
        "episodes[0].scenes[2].cuts[1].frames",
        "greater than or equal to 1",
    ),
    (
        lambda d: d["episodes"][0]["scenes"][0]["cuts"][0].update(fsp=8),
        "episodes[0].scenes[0].cuts[0].fsp",
        "unknown field",
    ),
    (
        lambda d: d["episodes"][0]["scenes"][1]["cuts"][0]["cast"][0].update(character="kira"),
        "episodes[0].scenes[1].cuts[0].cast[0].character",
        "unknown character 'kira'",
    ),
    (
        lambda d: d["episodes"][0]["scenes"][1]["cuts"][0]["cast"][0].update(outfit="pyjamas"),
        "episodes[0].scenes[1].cuts[0].cast[0].outfit",
        "'aki' has no outfit 'pyjamas'",
    ),
    (
        lambda d: d["characters"][1]["references"][0].update(path="refs/missing.png"),
        "characters[1].references[0].path",
        "image file not found",
    ),
    (
        lambda d: d["episodes"][0]["scenes"][0]["cuts"].append({"number": 1}),
        "episodes[0].scenes[0]",
        "repeats number 1",
    ),
    (lambda d: d["project"].pop("slug"), "project.slug", "required field is missing"),
    (
        lambda d: d["project"].update(slug="Moonlit Courier!"),
        "project.slug",
        "should match pattern",
    ),
    (
        lambda d: d["characters"][0]["attributes"].update({"Hair Color": "red"}),
        "characters[0].attributes",
        "same key as another",
    ),
]


@pytest.mark.parametrize(("change", "path", "message"), BROKEN_CASES)
def test_broken_file_names_file_path_and_problem_and_changes_nothing(
    db, work_copy, change, path, message
):
    do_import(EXAMPLE)
    before = snapshot()
    edit(work_copy, lambda d: (change(d), d["episodes"][0].update(title="Renamed")))
    with pytest.raises(ProductionFileError) as info:
        do_import(work_copy)
    text = str(info.value)
    assert str(work_copy) in text
    assert any(p == path and message in m for p, m in info.value.problems), text
    assert snapshot() == before


def test_yaml_syntax_error_and_duplicate_keys_name_the_line(db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("project:\n  slug: a\n  name: [unclosed\n")
    with pytest.raises(
        ProductionFileError, match=r"bad.yaml: line \d+, column \d+: not valid YAML"
    ):
        load_production(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("project:\n  slug: a\n  slug: b\n  name: A\n")
    with pytest.raises(ProductionFileError, match=r"duplicate key 'slug' \(line 3\)"):
        load_production(dup)


def test_failure_while_writing_rolls_back_everything(db, work_copy):
    """A database error midway (here: a unique clash) leaves the database as it was."""
    do_import(EXAMPLE)
    before = snapshot()
    production = load_production(work_copy)
    production.episodes[0].title = "Changed before the failure"
    with pytest.raises(Exception), session_scope() as s:  # noqa: B017
        import_production(s, production)
        s.add(Episode(project_id=1, number=1, title="clash"))
        s.flush()
    assert snapshot() == before


def test_export_imports_back_to_the_same_rows(db, tmp_path, monkeypatch):
    # Written outside the production's folder, the export names its images absolutely: they
    # import only from a configured media root (issue 18).
    monkeypatch.setenv("ANIME_MEDIA_ROOT", str(EXAMPLE.parent))
    do_import(EXAMPLE)
    before = snapshot()
    with session_scope() as s:
        exported = dump_production(export_production(s, "moonlit-courier"))
    out = tmp_path / "exported.yaml"
    out.write_text(exported)
    report = do_import(out)
    assert not report.changed, report.summary()
    assert snapshot() == before


def test_export_into_an_empty_database_recreates_the_production(db, tmp_path, monkeypatch):
    # Written outside the production's folder, the export names its images absolutely: they
    # import only from a configured media root (issue 18).
    monkeypatch.setenv("ANIME_MEDIA_ROOT", str(EXAMPLE.parent))
    do_import(EXAMPLE)
    with session_scope() as s:
        exported = dump_production(export_production(s, "moonlit-courier"))
        original = _content(s)
    out = tmp_path / "exported.yaml"
    out.write_text(exported)
    with session_scope() as s:
        s.execute(Base.metadata.tables["projects"].delete())
    do_import(out)
    with session_scope() as s:
        assert _content(s) == original


def _content(s) -> list:
    """Rows by their natural keys (ids may differ between databases)."""
    return sorted(
        (
            c.scene.episode.number,
            c.scene.number,
            c.number,
            c.description,
            c.frames,
            c.fps,
            tuple(sorted((r.character.slug, str(r.variations)) for r in c.casting)),
        )
        for c in s.scalars(select(Cut))
    ) + sorted(
        (ch.slug, tuple(sorted(ch.attribute_map().items())), len(ch.references))
        for ch in s.scalars(select(Character))
    )


def test_unknown_project_export_is_a_clear_error(db):
    from db.engine import session_scope as scope

    with pytest.raises(LookupError, match="no project with slug 'nope'"), scope() as s:
        export_production(s, "nope")


def test_cut_casting_rows_follow_the_file(db, work_copy):
    do_import(work_copy)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CutCasting)) == 8
    edit(work_copy, lambda d: d["episodes"][0]["scenes"][2]["cuts"][2]["cast"].pop())
    do_import(work_copy)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CutCasting)) == 7


async def test_reimport_keeps_a_variation_added_through_the_api_and_says_so(db, work_copy):
    import httpx

    from anime.api.app import create_app

    do_import(work_copy)
    with session_scope() as s:
        aki = s.scalar(select(Character.id).where(Character.slug == "aki"))
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        created = await client.post(
            f"/api/anime/characters/{aki}/variations",
            json={"kind": "outfit", "name": "winter-coat", "prompt": "long red coat"},
        )
    assert created.status_code == 201, created.text

    report = do_import(work_copy)
    assert "variation aki outfit/winter-coat (api)" in report.kept_absent
    assert "variation aki outfit/winter-coat" in report.summary()
    with session_scope() as s:
        assert s.get(CharacterVariation, created.json()["id"]) is not None

    # A variation the file itself dropped is still the file's to remove.
    def drop_running(data):
        data["characters"][1]["variations"].pop(2)  # ren's "surprised", cast nowhere

    edit(work_copy, drop_running)
    assert do_import(work_copy).updated["character"] == 1
    report = do_import(work_copy, prune=True)
    assert report.removed["variation"] == 1
    with session_scope() as s:
        assert s.get(CharacterVariation, created.json()["id"]) is None


def test_a_moved_copy_of_the_production_is_the_same_production(db, work_copy, tmp_path):
    do_import(work_copy)
    with session_scope() as s:
        embeddings_owner = s.scalar(select(Character).where(Character.slug == "aki"))
        paths = sorted(r.path for r in embeddings_owner.references)
    assert paths and all(not p.startswith("/") for p in paths)  # stored relative

    moved = tmp_path / "elsewhere" / "moonlit"
    shutil.move(work_copy.parent, moved)
    report = do_import(moved / "production.yaml")
    assert not report.changed, report.summary()
    assert report.story_bible_version == 1
    assert f"now read from {moved.resolve()}" in report.summary()
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        files = [r.file for r in aki.references]
    assert all(Path(f).is_file() and f.startswith(str(moved.resolve())) for f in files)
