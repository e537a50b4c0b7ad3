"""Objects that belong to one event loop (asyncio locks and conditions bind to the loop that
first waits on them), made on first use in each loop and dropped with the loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_objects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def loop_local(name: str, factory: Callable[[], T]) -> T:
    """The running loop's object called `name`, made by `factory` the first time."""
    found = _objects.setdefault(asyncio.get_running_loop(), {})
    if name not in found:
        found[name] = factory()
    return found[name]
