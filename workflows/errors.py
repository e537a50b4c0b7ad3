"""Errors raised by the workflow layer; each names what is wrong and where."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workflows.validation import GraphProblem


class WorkflowError(Exception):
    """Base class of every error this package raises on bad input."""


class UnknownTemplateError(WorkflowError, LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "(none)"
        super().__init__(f"unknown workflow template {name!r}; known templates: {listed}")


class ManifestError(WorkflowError, ValueError):
    """A template's manifest is malformed or does not match its graph."""

    def __init__(self, template: str, message: str, *, path: str | None = None) -> None:
        self.template = template
        self.path = path
        where = f" ({path})" if path else ""
        super().__init__(f"template {template!r}{where}: {message}")


class TemplateParameterError(WorkflowError, ValueError):
    """A parameter given to render_template is unknown, missing or of the wrong type/range."""

    def __init__(self, template: str, parameter: str, message: str) -> None:
        self.template = template
        self.parameter = parameter
        super().__init__(f"template {template!r}, parameter {parameter!r}: {message}")


class GraphValidationError(WorkflowError, ValueError):
    """Every problem found in a graph before submission, reported together."""

    def __init__(self, problems: list[GraphProblem], template: str | None = None) -> None:
        self.problems = list(problems)
        self.template = template
        what = f"template {template!r}" if template else "workflow graph"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{what} failed validation against /object_info "
            f"({len(self.problems)} problem(s)); nothing was queued:\n{lines}"
        )


class UIImportError(WorkflowError, ValueError):
    """An editor (UI-format) graph could not be converted to API format."""

    def __init__(self, problems: list[str], *, missing_node_types: list[str] = ()) -> None:
        self.problems = list(problems)
        # Node types the server lacks (refusals the studio can fix by installing a pack).
        self.missing_node_types = list(missing_node_types)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"editor workflow could not be converted to API format "
            f"({len(self.problems)} problem(s)):\n{lines}"
        )
