"""Character looks in the production file: validated, imported, exported back, kept on removal."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.briefs import load_cut_brief
from db.engine import session_scope
from db.looks import LookChooser
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


def in_force(s, character: Character) -> dict[int, str | None]:
    """Episode number -> the name of the character's look in force there (None: base)."""
    chooser = LookChooser(s, character.project_id)
    out = {}
    for episode in s.scalars(select(Episode).order_by(Episode.number)):
        look = chooser.look_for(character, episode.id)
        out[episode.number] = look.name if look else None
    return out


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
        assert in_force(s, aki) == {1: None, 2: "time-skip"}


def _aki_in_cut(s, episode: int, cut: int):
    """Aki as cast in that cut of scene 1 (the look in force, or the one the cut names)."""
    cut_id = s.scalar(
        select(Cut.id)
        .join(Scene)
        .join(Episode)
        .where(Episode.number == episode, Scene.number == 1, Cut.number == cut)
    )
    return {m.slug: m for m in load_cut_brief(s, cut_id).cast}["aki"]


def test_each_cut_gets_the_look_in_force_or_the_one_it_names(db, looks_copy):
    do_import(looks_copy)
    with session_scope() as s:
        brief = functools.partial(_aki_in_cut, s)
        before, after, flashback, festival = brief(1, 2), brief(2, 1), brief(2, 2), brief(2, 3)
    assert (before.look, after.look, flashback.look, festival.look) == (
        "base",
        "time-skip",
        "base",
        "festival",
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
    ((found_where, found_message),) = caught.value.problems
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
        assert in_force(s, look.character)[2] is None  # no longer in force
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
    # Nothing rendered yet: each cut's planned look, said as planned.
    assert "look aki: not rendered yet, planned: base (7 cuts)" in result.output  # episode 1
    assert "look ren: not rendered yet, planned: base (2 cuts)" in result.output
    planned = "base (1 cut), festival (1 cut), time-skip (1 cut)"  # episode 2, by cut
    assert f"look aki: not rendered yet, planned: {planned}" in result.output
    assert "rendered in" not in result.output
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


# --- looks in force from a point of the story -------------------------------------------------

MAIN = "e93b0367a96a"  # the example story's main: dispatch rewritten (after the first draft)
REN_POV = "5182c8bb8d6f"  # the ren-pov branch: a scene added before the rooftop


def adapt_three_episodes(data: dict) -> None:
    """Episode 1 adapts the first draft's first chapter; episode 2 main's second chapter
    (the rooftop); episode 3 the ren-pov branch's second chapter (ren-waits, the rooftop)."""
    first, second = data["episodes"]
    first["story_scenes"] = ["the-night-delivery"]
    second.update(story_commit=f"moonlit-courier@{MAIN}", story_scenes=["the-address"])
    third = {
        "number": 3,
        "title": "Ren's Side",
        "story_commit": f"moonlit-courier@{REN_POV}",
        "story_branch": "ren-pov",
        "story_scenes": ["the-address"],
        "scenes": [{"number": 1, "cuts": [{"number": 1, "cast": ["aki"]}]}],
    }
    data["episodes"].append(third)


def start_from_story(point: str):
    def change(data: dict) -> None:
        adapt_three_episodes(data)
        look = data["characters"][0]["looks"][0]
        del look["from_episode"]
        look["from_story"] = point

    return change


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        # The rooftop scene: episode 2 adapts it, episode 3 adapts it on another branch.
        ("rooftop", {1: None, 2: "time-skip", 3: "time-skip"}),
        # main's commit: only the episode adapting a version that holds it.
        (f"moonlit-courier@{MAIN}", {1: None, 2: "time-skip", 3: None}),
        (MAIN, {1: None, 2: "time-skip", 3: None}),  # a bare commit id
    ],
    ids=["scene", "commit", "bare-commit-id"],
)
def test_a_look_from_a_story_point_is_in_force_where_the_episode_adapts_it(
    db, looks_copy, point, expected
):
    edit(looks_copy, start_from_story(point))
    do_import(looks_copy)
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        assert in_force(s, aki) == expected
        look = next(k for k in aki.looks if k.name == "time-skip")
        assert look.from_episode is None
        if point == "rooftop":
            assert (look.from_story_scene, look.from_story_commit) == ("rooftop", None)
        else:
            assert look.from_story_commit.sha.startswith(MAIN) and look.from_story_scene is None

        brief = functools.partial(_aki_in_cut, s)
        before, after = brief(1, 2), brief(2, 1)
    # The cut's prompt and references follow the story: the episode before it, the old look.
    assert (before.look, after.look) == ("base", "time-skip")
    assert "long blue hair" in after.base_prompt and "long blue hair" not in before.base_prompt
    assert [Path(p).name for p in after.reference_images][-1] == "aki-older.png"
    assert "aki-older.png" not in [Path(p).name for p in before.reference_images]


def test_an_episode_readapted_later_in_the_story_takes_the_new_look(db, looks_copy):
    """The story point is where the look starts, not a list of episodes fixed at import: an
    episode moved on to a later version (`anime story adapt`) gets the look in force there."""
    from db.story import adapt_episode

    edit(looks_copy, start_from_story(f"moonlit-courier@{MAIN}"))
    do_import(looks_copy)
    with session_scope() as s:
        episode = s.scalar(select(Episode).where(Episode.number == 3))
        adapt_episode(s, episode, "moonlit-courier@main", ["the-address"])
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        assert in_force(s, aki) == {1: None, 2: "time-skip", 3: "time-skip"}


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            start_from_story("nowhere"),
            "characters[0].looks[0].from_story",
            "no story scene, chapter or commit 'nowhere' in project moonlit-courier "
            "(stories: moonlit-courier)",
        ),
        (
            start_from_story("moonlit-courier@0000000000"),
            "characters[0].looks[0].from_story",
            "story moonlit-courier has no branch or commit '0000000000' (branches: main, ren-pov)",
        ),
        (
            start_from_story("moonlit-courier@main"),
            "characters[0].looks[0].from_story",
            "moonlit-courier@main is a branch, which moves; name a commit (its head now is "
            f"moonlit-courier@{MAIN[:10]})",
        ),
        (
            lambda d: d["characters"][0]["looks"][0].update(from_story="rooftop"),
            "characters[0].looks[0].from_story",
            "give from_episode or from_story, not both",
        ),
        (
            # festival from the rooftop: episode 2, where time-skip takes effect too.
            lambda d: (
                adapt_three_episodes(d),
                d["characters"][0]["looks"][1].update(from_story="rooftop"),
            ),
            "characters[0].looks[1].from_story",
            "look 'festival' overlaps look 'time-skip': both take effect from episode 2",
        ),
    ],
    ids=["unknown-scene", "unknown-commit", "branch", "both", "overlapping"],
)
def test_a_bad_story_point_is_one_clear_error_and_nothing_is_imported(
    db, looks_copy, change, where, message
):
    edit(looks_copy, change)
    with pytest.raises(ProductionFileError) as caught:
        do_import(looks_copy)
    assert len(caught.value.problems) == 1, caught.value.problems
    ((found_where, found_message),) = caught.value.problems
    assert found_where == where and message in found_message, found_message
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0


def test_anime_import_names_the_file_and_field_of_a_bad_story_point(db, looks_copy):
    from typer.testing import CliRunner

    from anime.cli import app

    edit(looks_copy, start_from_story("nowhere"))
    result = CliRunner().invoke(app, ["import", str(looks_copy)])
    assert result.exit_code == 1, result.output
    assert f"{looks_copy}: characters[0].looks[0].from_story: no story scene" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("point", ["rooftop", f"moonlit-courier@{MAIN}"], ids=["scene", "commit"])
def test_export_with_story_looks_imports_back_to_the_same_rows(
    db, looks_copy, tmp_path, monkeypatch, point
):
    monkeypatch.setenv("ANIME_MEDIA_ROOT", str(looks_copy.parent))
    edit(looks_copy, start_from_story(point))
    do_import(looks_copy)
    before = snapshot()
    with session_scope() as s:
        production = export_production(s, "moonlit-courier")
    [skip] = [k for k in production.characters[0].looks if k.name == "time-skip"]
    assert skip.from_episode is None
    if point == "rooftop":
        assert skip.from_story == "rooftop"
    else:  # the whole commit id, whatever prefix the file used
        assert skip.from_story.startswith(point) and len(skip.from_story.split("@")[1]) == 64
    out = tmp_path / "elsewhere" / "exported.yaml"
    out.parent.mkdir()
    out.write_text(dump_production(production))
    report = do_import(out)
    assert not report.changed, report.summary()
    assert snapshot() == before


def test_story_point_migration_downgrades_to_cut_only_looks_and_upgrades_again(
    fresh_database, looks_copy
):
    from sqlalchemy import inspect

    from db import migrate
    from db.engine import get_engine

    migrate.upgrade()
    edit(looks_copy, start_from_story("rooftop"))
    do_import(looks_copy)
    migrate.downgrade("0009_character_looks")
    columns = {c["name"] for c in inspect(get_engine()).get_columns("character_looks")}
    assert "from_story_scene" not in columns and "from_story_commit_id" not in columns
    migrate.upgrade()
    with session_scope() as s:  # the look and its references stay, with no start of its own
        look = s.scalar(select(CharacterLook).where(CharacterLook.name == "time-skip"))
        assert (look.from_episode, look.from_story_scene, len(look.references)) == (None, None, 1)
    report = do_import(looks_copy)
    assert report.updated["character"] == 1  # the story point back
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        assert in_force(s, aki) == {1: None, 2: "time-skip", 3: "time-skip"}
