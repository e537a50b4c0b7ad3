"""Character looks in the production file: validated, imported, exported back, kept on removal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.briefs import load_cut_brief
from db.engine import session_scope
from db.models import Character, CharacterLook, CharacterReference, Cut, Episode, Project, Scene
from db.production_file import ProductionFileError, dump_production, load_production
from db.production_io import export_production
from tests.conftest import EXAMPLE
from tests.foundation.test_import import do_import, edit, snapshot


def add_looks(data: dict) -> None:
    """Episode 2 after a time skip: Aki's hair grows and she has new references for it;
    cut 2 of episode 2 is a flashback to the base look."""
    episode = {
        "number": 2,
        "title": "Two Years On",
        "scenes": [
            {
                "number": 1,
                "cuts": [
                    {"number": 1, "description": "Aki on the roof", "cast": ["aki"]},
                    {
                        "number": 2,
                        "description": "Aki remembers the first delivery",
                        "cast": [{"character": "aki", "look": "base"}],
                    },
                    {
                        "number": 3,
                        "description": "Aki at the festival",
                        "cast": [{"character": "aki", "look": "festival"}],
                    },
                ],
            }
        ],
    }
    data["episodes"].append(episode)
    aki = data["characters"][0]
    aki["looks"] = [
        {
            "name": "time-skip",
            "from_episode": 2,
            "prompt": "long blue hair, scar over left eyebrow",
            "attributes": {"Hair Style": " Long ", "scar": "left eyebrow"},
            "references": [{"path": "refs/aki-older.png", "view": "front"}],
        },
        {
            "name": "festival",
            "prompt": "yukata, hair up",
            "references": [{"path": "refs/aki-yukata.png", "view": "front"}],
            "replaces_references": True,
        },
    ]


@pytest.fixture
def looks_copy(tmp_path: Path) -> Path:
    """The example, copied, with looks: the new references are copies of the anchors."""
    work_copy = tmp_path / "moonlit" / "production.yaml"
    shutil.copytree(EXAMPLE.parent, work_copy.parent)
    refs = work_copy.parent / "refs"
    shutil.copy(refs / "aki-profile.png", refs / "aki-older.png")
    shutil.copy(refs / "aki-three-quarter.png", refs / "aki-yukata.png")
    edit(work_copy, add_looks)
    return work_copy


def test_looks_are_imported_with_normalized_attributes_and_their_own_references(db, looks_copy):
    report = do_import(looks_copy)
    assert report.created["character"] == 2
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        looks = {look.name: look for look in aki.looks}
        assert set(looks) == {"time-skip", "festival"}
        skip = looks["time-skip"]
        assert skip.from_episode == 2
        assert skip.attributes == {"hair_style": "long", "scar": "left eyebrow"}
        assert skip.attribute_map()["hair_style"] == "long"  # the base "short bob" replaced
        assert skip.attribute_map()["eyes"] == "amber"  # the rest kept
        by_look = {r.path: (r.look.name if r.look else None) for r in aki.references}
        assert by_look["refs/aki-older.png"] == "time-skip"
        assert by_look["refs/aki-front.png"] is None  # an anchor
        assert aki.look_for(1) is None and aki.look_for(2) is skip and aki.look_for(7) is skip


def test_each_cut_gets_the_look_in_force_or_the_one_it_names(db, looks_copy):
    do_import(looks_copy)
    with session_scope() as s:
        def brief(episode: int, cut: int):
            cut_id = s.scalar(
                select(Cut.id)
                .join(Scene)
                .join(Episode)
                .where(Episode.number == episode, Scene.number == 1, Cut.number == cut)
            )
            return {m.slug: m for m in load_cut_brief(s, cut_id).cast}["aki"]

        before, after, flashback, festival = brief(1, 2), brief(2, 1), brief(2, 2), brief(2, 3)
    assert (before.look, after.look, flashback.look, festival.look) == (
        "base", "time-skip", "base", "festival"
    )
    assert "long blue hair" in after.base_prompt and "long blue hair" not in before.base_prompt
    assert flashback.base_prompt == before.base_prompt
    names = lambda m: [Path(p).name for p in m.reference_images]  # noqa: E731
    assert names(before) == ["aki-front.png", "aki-three-quarter.png", "aki-profile.png"]
    assert names(after) == names(before) + ["aki-older.png"]  # anchors shared, its own added
    assert names(festival) == ["aki-yukata.png"]  # it replaces the anchors


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            lambda d: d["characters"][0]["looks"][0].update(from_episode=9),
            "characters[0].looks[0].from_episode",
            "unknown episode 9 (known: 1, 2)",
        ),
        (
            lambda d: d["characters"][0]["looks"][1].update(from_episode=2),
            "characters[0].looks[1].from_episode",
            "look 'festival' overlaps look 'time-skip': both take effect from episode 2",
        ),
        (
            lambda d: d["characters"][0]["looks"][0]["references"].append(
                {"path": "../outside.png"}
            ),
            "characters[0].looks[0].references[1].path",
            "../outside.png is outside the production's folder",
        ),
        (
            lambda d: d["episodes"][1]["scenes"][0]["cuts"][2]["cast"][0].update(look="winter"),
            "episodes[1].scenes[0].cuts[2].cast[0].look",
            "'aki' has no look 'winter' (known: base, festival, time-skip)",
        ),
        (
            lambda d: d["episodes"][1]["scenes"][0].update(
                cast=[{"character": "aki", "look": "festival"}]
            ),
            "episodes[1].scenes[0].cast[0].look",
            "a look is chosen per cut",
        ),
    ],
    ids=["unknown-episode", "overlapping", "outside-folder", "unknown-look", "scene-look"],
)
def test_a_bad_look_is_one_clear_error_and_nothing_is_imported(
    db, looks_copy, change, where, message
):
    outside = looks_copy.parent.parent / "outside.png"  # exists, but beside the folder
    shutil.copy(looks_copy.parent / "refs" / "aki-front.png", outside)
    edit(looks_copy, change)
    with pytest.raises(ProductionFileError) as caught:
        do_import(looks_copy)
    assert len(caught.value.problems) == 1, caught.value.problems
    (found_where, found_message), = caught.value.problems
    assert found_where == where and message in found_message
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0


def test_export_with_looks_imports_back_to_the_same_rows(db, looks_copy, tmp_path, monkeypatch):
    # Written elsewhere, the export names the images absolutely: the media root admits them.
    monkeypatch.setenv("ANIME_MEDIA_ROOT", str(looks_copy.parent))
    do_import(looks_copy)
    before = snapshot()
    with session_scope() as s:
        exported = dump_production(export_production(s, "moonlit-courier"))
    assert "time-skip" in exported and "look: festival" in exported
    out = tmp_path / "elsewhere" / "exported.yaml"  # outside the production's folder
    out.parent.mkdir()
    out.write_text(exported)
    report = do_import(out)
    assert not report.changed, report.summary()
    assert snapshot() == before


def test_a_look_dropped_from_the_file_is_retired_with_its_references_until_prune(db, looks_copy):
    do_import(looks_copy)

    def drop_time_skip(d: dict) -> None:
        d["characters"][0]["looks"].pop(0)

    edit(looks_copy, drop_time_skip)
    report = do_import(looks_copy)
    assert "look aki/time-skip" in report.kept_absent
    with session_scope() as s:
        look = s.scalar(select(CharacterLook).where(CharacterLook.name == "time-skip"))
        assert look.retired and [r.path for r in look.references] == ["refs/aki-older.png"]
        assert look.character.look_for(2) is None  # no longer in force
    report = do_import(looks_copy, prune=True)
    assert report.removed["look"] == 1
    with session_scope() as s:
        assert s.scalar(select(CharacterLook).where(CharacterLook.name == "time-skip")) is None
        paths = set(s.scalars(select(CharacterReference.path)))
        assert "refs/aki-older.png" not in paths and "refs/aki-front.png" in paths
    assert load_production(looks_copy)  # the file itself still valid


async def test_the_api_lists_a_characters_looks(db, looks_copy):
    import httpx

    from anime.api.app import create_app

    do_import(looks_copy)
    with session_scope() as s:
        aki = s.scalar(select(Character.id).where(Character.slug == "aki"))
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        found = await client.get(f"/api/anime/characters/{aki}/looks")
        missing = await client.get("/api/anime/characters/999999/looks")
    assert found.status_code == 200, found.text
    looks = {look["name"]: look for look in found.json()}
    assert list(looks) == ["base", "time-skip", "festival"]
    assert looks["time-skip"]["from_episode"] == 2
    assert looks["time-skip"]["attributes"]["hair_style"] == "long"
    assert len(looks["base"]["reference_ids"]) == 3
    assert len(looks["time-skip"]["reference_ids"]) == 4  # the anchors and its own
    assert len(looks["festival"]["reference_ids"]) == 1
    assert missing.status_code == 404


def test_status_and_review_show_each_cast_characters_look(db, looks_copy):
    from typer.testing import CliRunner

    from anime.cli import app
    from db.review import episode_review

    do_import(looks_copy)
    result = CliRunner().invoke(app, ["status", "moonlit-courier"])
    assert result.exit_code == 0, result.output
    assert "looks: aki: base; ren: base" in result.output  # episode 1
    assert "looks: aki: time-skip (named by 1 cut(s) base, 1 cut(s) festival)" in result.output
    with session_scope() as s:
        episode = s.scalar(select(Episode.id).where(Episode.number == 2))
        review = episode_review(s, episode)
    assert [[(c.slug, c.look, len(c.reference_ids)) for c in cut.cast] for cut in review.cuts] == [
        [("aki", "time-skip", 4)],
        [("aki", "base", 3)],
        [("aki", "festival", 1)],
    ]


def test_looks_migration_downgrades_to_the_anchors_and_upgrades_again(fresh_database, looks_copy):
    from sqlalchemy import inspect, text

    from db import migrate
    from db.engine import get_engine

    before = "0009_character_looks-1"  # whatever precedes it in the chain
    migrate.upgrade()
    do_import(looks_copy)
    with get_engine().connect() as conn:
        assert conn.execute(text("select count(*) from character_references")).scalar() == 8
    migrate.downgrade(before)
    tables = set(inspect(get_engine()).get_table_names())
    assert not {"character_looks", "job_looks"} & tables
    with get_engine().connect() as conn:
        # A look's references go with it; the anchors (3 of aki's, 3 of ren's) stay.
        assert conn.execute(text("select count(*) from character_references")).scalar() == 6
    migrate.upgrade()
    report = do_import(looks_copy)
    assert report.updated["character"] == 1  # aki's looks and their references back
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CharacterLook)) == 2
        assert s.scalar(select(func.count()).select_from(CharacterReference)) == 8
