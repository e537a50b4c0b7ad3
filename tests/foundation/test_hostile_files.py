"""Hostile production and story files (issue 18): image bombs, broken images, paths out of the
production, alias bombs and oversize files are refused at import, naming the file and the
field, with nothing stored; images decoded later go through the same bounded loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from anime.story_file import StoryFileError, load_story_file
from db.engine import session_scope
from db.image_files import ImageFileError, load_image_file
from db.models import Project
from db.production_file import ProductionFileError, load_production
from db.production_io import import_production
from tasks.rendering.animatic import draw_panel, render_animatic
from tasks.scoring.images import load_image
from tasks.scoring.loading.errors import FrameInputError
from tests.conftest import EXAMPLE
from tests.foundation.hostile import alias_bomb, bomb_png, truncated_png

REF = "characters[0].references[0].path"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "moonlit"
    shutil.copytree(EXAMPLE.parent, target)
    return target / "production.yaml"


def set_first_reference(production: Path, path: str) -> None:
    data = yaml.safe_load(production.read_text())
    data["characters"][0]["references"][0]["path"] = path
    production.write_text(yaml.safe_dump(data, sort_keys=False))


def refused(production: Path) -> str:
    """The import's message; the database is asserted to hold no project afterwards."""
    with pytest.raises(ProductionFileError) as caught:
        production_file = load_production(production)
        with session_scope() as s:
            import_production(s, production_file)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0
    return str(caught.value)


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [13_000, 20_000])
def test_an_image_bomb_is_refused_at_import_naming_file_and_field(db, copy, side):
    bomb_png(copy.parent / "refs" / "bomb.png", side, side)
    set_first_reference(copy, "refs/bomb.png")
    message = refused(copy)
    assert f"{REF}: bomb.png:" in message and "pixels" in message and "over the" in message


def test_a_text_file_named_png_is_refused_at_import(db, copy):
    (copy.parent / "refs" / "notes.png").write_text("not a picture\n")
    set_first_reference(copy, "refs/notes.png")
    assert f"{REF}: notes.png: not a readable image" in refused(copy)


def test_a_truncated_png_is_refused_at_import_naming_it(db, copy):
    truncated_png(copy.parent / "refs" / "aki-front.png", copy.parent / "refs" / "half.png")
    set_first_reference(copy, "refs/half.png")
    assert f"{REF}: half.png: the image data is damaged or cut short" in refused(copy)


def test_an_image_format_the_studio_does_not_read_is_refused(db, copy):
    with load_image_file(copy.parent / "refs" / "aki-front.png") as image:
        image.save(copy.parent / "refs" / "aki.ppm", format="PPM")
    set_first_reference(copy, "refs/aki.ppm")
    assert f"{REF}: aki.ppm: PPM is not an image format the studio reads" in refused(copy)


def test_the_pixel_cap_is_configurable(db, copy, monkeypatch):
    monkeypatch.setenv("ANIME_MAX_IMAGE_PIXELS", "1000")
    message = refused(copy)
    assert "over the 1,000 allowed (ANIME_MAX_IMAGE_PIXELS)" in message
    assert "story_bible.style_references[0]: style-1.png" in message


def test_images_decoded_later_are_bounded_the_same_way(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png", 13_000, 13_000)
    half = truncated_png(EXAMPLE.parent / "refs" / "aki-front.png", tmp_path / "half.png")
    spec = {"width": 64, "height": 48, "frames": 1, "source_image": str(bomb)}
    with pytest.raises(ImageFileError, match="bomb.png: 13000 x 13000 is 169,000,000 pixels"):
        render_animatic(spec, tmp_path / "out", "cut")
    with pytest.raises(ImageFileError, match="half.png: the image data is damaged"):
        draw_panel(_panel_spec(half))
    with pytest.raises(FrameInputError, match="frame: bomb.png: 13000 x 13000"):
        load_image(bomb, where="frame")


def _panel_spec(reference: Path) -> dict:
    return {
        "width": 64,
        "height": 48,
        "seed": 1,
        "palette": ["#101820", "#f2aa4c", "#e0e0e0"],
        "camera": {"shot": "wide"},
        "cast": [{"reference_image": str(reference), "position": "left"}],
        "label": "s1c1",
        "description": "",
        "dialogue": "",
    }


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/shadow", "/etc/hostname"])
def test_a_reference_outside_the_production_is_refused(db, copy, path):
    set_first_reference(copy, path)
    message = refused(copy)
    assert f"{REF}: {path} is outside the production's folder" in message


def test_a_symlink_out_of_the_production_is_refused(db, copy, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(EXAMPLE.parent / "refs" / "aki-front.png", outside)
    (copy.parent / "refs" / "link.png").symlink_to(outside)
    set_first_reference(copy, "refs/link.png")
    assert f"{REF}: refs/link.png is outside the production's folder" in refused(copy)


def test_the_media_root_admits_images_outside_the_folder(db, copy, tmp_path, monkeypatch):
    shared = tmp_path / "media"
    shared.mkdir()
    shutil.copy(EXAMPLE.parent / "refs" / "aki-front.png", shared / "aki.png")
    set_first_reference(copy, str(shared / "aki.png"))
    assert "is outside the production's folder" in refused(copy)
    monkeypatch.setenv("ANIME_MEDIA_ROOT", str(shared))
    production = load_production(copy)
    assert production.characters[0].references[0].path == str((shared / "aki.png").resolve())


# --- YAML budgets ------------------------------------------------------------------------


def test_an_alias_bomb_in_the_settings_is_refused_at_once(db, copy):
    copy.write_text(_with_settings(copy.read_text(), alias_bomb(), "*l8"))
    message = refused(copy)
    assert "aliases expand the file to" in message and "use fewer nested aliases" in message


def _with_settings(production_text: str, anchors: str, value: str) -> str:
    """The production with ``anchors`` defined under project.settings and ``value`` used."""
    data = yaml.safe_load(production_text)
    data["project"]["settings"] = {}
    dumped = yaml.safe_dump(data, sort_keys=False)
    block = "  settings:\n    anchors:\n" + "".join(
        f"      {line}\n" for line in anchors.splitlines()
    )
    return dumped.replace("  settings: {}\n", block + f"    laughs: {value}\n", 1)


def test_a_recursive_alias_is_refused(db, copy):
    copy.write_text(_with_settings(copy.read_text(), "loop: &loop [*loop]", "*loop"))
    assert "an alias refers to itself (recursive)" in refused(copy)


def test_shared_aliases_within_the_budget_import(db, copy):
    copy.write_text(_with_settings(copy.read_text(), "palette: &p [a, b, c]", "[*p, *p, *p]"))
    production = load_production(copy)
    assert production.project.settings["laughs"] == [["a", "b", "c"]] * 3


def test_a_file_over_the_size_cap_is_refused_without_reading_it(db, copy, monkeypatch):
    monkeypatch.setenv("ANIME_MAX_YAML_BYTES", "1000")
    assert "over the 1,000 allowed (ANIME_MAX_YAML_BYTES)" in refused(copy)


def test_the_default_cap_refuses_a_huge_cut_description(db, copy):
    with copy.open("a") as out:
        out.write("# " + "x" * (17 * 1024 * 1024) + "\n")
    assert "over the 16,777,216 allowed" in refused(copy)


def test_story_files_have_the_same_budgets(tmp_path, monkeypatch):
    story = tmp_path / "story.yaml"
    story.write_text(alias_bomb() + "\nchapters: []\n")
    with pytest.raises(StoryFileError, match="aliases expand the file"):
        load_story_file(story)
    front = tmp_path / "story.md"
    front.write_text("---\n" + alias_bomb() + "\n---\n# Chapter\n")
    with pytest.raises(StoryFileError, match="front matter: aliases expand"):
        load_story_file(front)
    monkeypatch.setenv("ANIME_MAX_YAML_BYTES", "10")
    with pytest.raises(StoryFileError, match="over the 10 allowed"):
        load_story_file(story)


# --- templates ----------------------------------------------------------------------------


def _edit(production: Path, change) -> None:
    data = yaml.safe_load(production.read_text())
    change(data)
    production.write_text(yaml.safe_dump(data, sort_keys=False))


def test_unknown_templates_and_overrides_are_refused_at_import_with_known_names(db, copy):
    def change(data):
        data["project"]["settings"]["default_template"] = "keyfrme"
        data["project"]["settings"]["animation_template"] = "nope"
        cuts = data["episodes"][0]["scenes"][0]["cuts"]
        cuts[0]["template"] = "sdxl-turbo"
        cuts[1]["template"] = "keyframe"
        cuts[1]["overrides"] = {"stepz": 28}

    _edit(copy, change)
    message = refused(copy)
    known = "(known: animatediff_loop, character_sheet, keyframe, preview, svd_img2vid)"
    assert f"project.settings.default_template: unknown template 'keyfrme' {known}" in message
    assert "project.settings.animation_template: unknown template 'nope'" in message
    assert "episodes[0].scenes[0].cuts[0].template: unknown template 'sdxl-turbo'" in message
    assert "cuts[1].overrides.stepz: template 'keyframe' has no parameter 'stepz'" in message
    assert "steps" in message.split("stepz")[-1]  # the parameters it does have


def test_a_studio_template_is_known_at_import(db, copy, tmp_path, monkeypatch):
    from workflows.templating import TEMPLATES_DIR

    studio = tmp_path / "templates"
    studio.mkdir()
    shutil.copy(TEMPLATES_DIR / "preview.json", studio / "house_style.json")
    manifest = (TEMPLATES_DIR / "preview.manifest.yaml").read_text()
    (studio / "house_style.manifest.yaml").write_text(
        manifest.replace("name: preview", "name: house_style")
    )
    _edit(copy, lambda data: data["project"]["settings"].update(default_template="house_style"))
    assert "unknown template 'house_style'" in refused(copy)
    monkeypatch.setenv("ANIME_TEMPLATES_DIR", str(studio))
    production = load_production(copy)
    assert production.project.settings["default_template"] == "house_style"
