"""Prefect's standard checks for blocks, over every Block the project ships.

The blocks are found by walking the ``blocks`` package, so a block added (or a module moved
into a subpackage) is checked without touching this file. Logos are fetched over the network
when the test can reach their host; offline, that one check only asks that a logo is set.
"""

from __future__ import annotations

import importlib
import pkgutil
from urllib.error import URLError

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import blocks


def _modules() -> list[str]:
    found = [blocks.__name__]
    for info in pkgutil.walk_packages(blocks.__path__, prefix=f"{blocks.__name__}."):
        found.append(info.name)
    return sorted(found)


def _discover() -> tuple[list[type[Block]], list[str]]:
    classes: list[type[Block]] = []
    broken: list[str] = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a module that does not import is a failure of its own
            broken.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Block)
                and value.__module__ == name
                and value not in classes
            ):
                classes.append(value)
    return sorted(classes, key=lambda c: c.__name__), broken


BLOCKS, BROKEN = _discover()


def test_every_blocks_module_imports() -> None:
    assert not BROKEN, "\n".join(BROKEN)


def test_the_project_ships_blocks() -> None:
    names = {b.__name__ for b in BLOCKS}
    assert {"ComfyUIServer", "QualityThresholds", "ScoringModels"} <= names, names


class TestBlockStandards(BlockStandardTestSuite):
    @pytest.fixture(params=BLOCKS, ids=[b.__name__ for b in BLOCKS])
    def block(self, request: pytest.FixtureRequest) -> type[Block]:
        return request.param

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        assert block._logo_url is not None, f"{block.__name__} is missing a value for _logo_url"
        try:
            super().test_has_a_valid_image(block)
        except URLError as exc:
            pytest.skip(f"cannot fetch {block._logo_url} from here ({exc.reason}): logo is set")
