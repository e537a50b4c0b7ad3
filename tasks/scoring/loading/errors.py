"""The errors every scoring model loader and input reader raises."""

from __future__ import annotations

from typing import Any


class ModelUnavailable(RuntimeError):
    """A scoring model cannot be loaded: says which, where it was expected, and how to fix it."""

    def __init__(self, model: str, expected: str, how: str, problem: str = "not found") -> None:
        self.model = model
        self.expected = expected
        self.how = how
        self.problem = problem
        super().__init__(f"{model}: {problem}: {expected}. {how}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions; rebuild from the parts, not from the message.
        return (type(self), (self.model, self.expected, self.how, self.problem))


class FaceModelUnavailable(ModelUnavailable):
    """The face models cannot be loaded from local files; the message says what goes where.

    A ``ModelUnavailable``, so one ``except`` covers every scoring model.
    """


class FrameInputError(ValueError):
    """An image or clip given to a metric cannot be read as RGB frames."""
