"""Attribute normalization: one canonical key/value form, whatever path writes it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.engine import session_scope
from db.models import Character, CharacterAttribute, Project
from db.normalize import normalize_attribute_key, normalize_attribute_value


@pytest.mark.parametrize("value", ["Blue", "blue ", "BLUE", "  blue\t"])
def test_spellings_of_one_value_are_one_value(value):
    assert normalize_attribute_value(value) == "blue"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Hair Colour", "hair_color"),
        ("hair-color", "hair_color"),
        ("Eye color", "eyes"),
        ("  OUTFIT ", "outfit"),
        ("clothing", "outfit"),
    ],
)
def test_key_spellings_and_synonyms(raw, canonical):
    assert normalize_attribute_key(raw) == canonical


def test_value_synonyms_fold():
    assert normalize_attribute_value("Blond") == "blonde"
    assert normalize_attribute_value("Dark  GREY") == "dark gray"


def test_empty_values_are_refused():
    with pytest.raises(ValueError, match="empty"):
        normalize_attribute_value("   ")


def test_orm_writes_are_normalized_and_unique_per_key(db):
    from sqlalchemy.exc import IntegrityError

    with session_scope() as s:
        project = Project(slug="p", name="P")
        character = Character(slug="c", name="C", project=project)
        character.attributes.append(CharacterAttribute(key="Hair Colour", value=" BLUE "))
        s.add(project)
    with session_scope() as s:
        row = s.scalar(select(CharacterAttribute))
        assert (row.key, row.value) == ("hair_color", "blue")
    with pytest.raises(IntegrityError), session_scope() as s:
        character = s.scalar(select(Character))
        character.attributes.append(CharacterAttribute(key="hair-color", value="red"))


def test_import_normalizes_the_example(db):
    from db.production_file import load_production
    from db.production_io import import_production
    from tests.conftest import EXAMPLE

    with session_scope() as s:
        import_production(s, load_production(EXAMPLE))
    with session_scope() as s:
        aki = s.scalar(select(Character).where(Character.slug == "aki"))
        assert aki.attribute_map()["hair_color"] == "blue"
        assert aki.attribute_map()["eyes"] == "amber"
        ren = s.scalar(select(Character).where(Character.slug == "ren"))
        assert ren.attribute_map()["hair_color"] == "gray"
