"""What every metric returns, whatever model computed it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class MetricResult(BaseModel):
    """One measurement. ``value`` is None when the metric could not be computed; ``reason`` then
    says why ("no face found", "model weights missing: ...") so that a gate can report
    could-not-judge instead of a misleading zero."""

    metric: str
    value: float | None
    subject: str | None = Field(None, description="e.g. the character slug for face_similarity")
    model: str = ""
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.value is not None
