"""What the pipeline asks a renderer for, in renderer-neutral terms.

A cut's keyframe or clip, a character sheet and a reproduction are all one `RenderRequest`:
named template parameters for renderers that fill a template (ComfyUI), a `Storyboard` for
renderers that draw what the subject says (the animatic), and, for a reproduction, the stored
workflow to submit again as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from db.vocabulary import Phase


class BoardFigure(BaseModel):
    slug: str
    reference_images: list[str] = Field(default_factory=list)
    position: str | None = None


class Storyboard(BaseModel):
    """What a drawing renderer draws: a panel of a cut, or the views of a character sheet."""

    description: str = ""
    dialogue: str = ""
    camera: dict[str, Any] = Field(default_factory=dict)
    cast: list[BoardFigure] = Field(default_factory=list)
    palette: list[str] = Field(default_factory=list)
    views: list[str] = Field(default_factory=list)  # a character sheet: one panel per view
    source_image: str | None = None  # the approved keyframe an animation starts from


class RenderRequest(BaseModel):
    renderer: str  # a name in tasks.rendering.renderers.RENDERERS
    job_id: int
    attempt: int
    phase: Phase
    label: str  # the subject, as people name it: "ep01-sc02-cut03", "aki sheet"
    project: str = ""  # the project's slug: the folder of its files on the ComfyUI server
    name: str  # file stem: "<label>-<phase>-a01"
    out_dir: str
    seed: int
    template: str | None = None  # the ComfyUI template
    # Named template parameters the pipeline sets: positive, negative, width, height, frames,
    # fps and the cut's overrides. A template keeps those it declares.
    parameters: dict[str, Any] = Field(default_factory=dict)
    board: Storyboard = Field(default_factory=Storyboard)
    # A reproduction: the exact workflow stored with the original job, submitted as it is.
    workflow: dict[str, Any] | None = None
    # ... and the images it reads (content-addressed name -> local file), uploaded again to the
    # chosen server before it is submitted: another server, or one whose input folder is gone.
    uploads: dict[str, str] = Field(default_factory=dict)
    servers: list[str] = Field(default_factory=list)  # ComfyUI server block names
    # Opened by this run: no ComfyUI server can have its prompt yet, so none is asked.
    new_job: bool = False
    # The run's start (the database's clock): a person's cancel made since then covering this
    # cut stops the render before it is submitted (tasks/cancel.py).
    run_started_at: datetime | None = None
