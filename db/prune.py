"""What an ``import --prune`` removes beyond the production's own rows: the render history
(jobs, their artifacts, parameters, scores, gates, reviews, reels) that the database cascades
away with a removed character, episode, scene or cut, and the output files those artifacts
name, which no row points at any more.

Measured inside the import's transaction, around a savepoint: rows present before and gone
after, per table, so every cascade counts, whichever table it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Artifact, Base, Job, Project

# The production's own rows: what ImportReport already counts as removed.
_PRODUCTION_TABLES = {
    "projects",
    "story_bibles",
    "characters",
    "character_attributes",
    "character_variations",
    "character_references",
    "episodes",
    "scenes",
    "cuts",
    "scene_casting",
    "cut_casting",
    # Derived from references, recomputed at the next import: not render history.
    "face_embeddings",
    "face_calibrations",
}


@dataclass
class PruneImpact:
    rows: dict[str, int] = field(default_factory=dict)  # render history removed, per table
    files: list[str] = field(default_factory=list)  # output files of the removed artifacts

    @property
    def removes_history(self) -> bool:
        return bool(self.rows)

    def describe(self) -> str:
        if not self.rows:
            return "no render history removed"
        listed = ", ".join(f"{n} {table}" for table, n in sorted(self.rows.items()))
        return f"render history removed with them: {listed}; {len(self.files)} output file(s)"


def _keys(session: Session) -> dict[str, set[tuple]]:
    out: dict[str, set[tuple]] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in _PRODUCTION_TABLES:
            continue
        out[table.name] = {tuple(r) for r in session.execute(select(*table.primary_key.columns))}
    return out


def _artifact_files(session: Session, project_slug: str) -> dict[int, str]:
    query = select(Artifact.id, Artifact.uri).join(Job).join(Project)
    rows = session.execute(query.where(Project.slug == project_slug))
    return {artifact_id: uri.removeprefix("file://") for artifact_id, uri in rows}


class PruneMeasure:
    """``with PruneMeasure(session, slug) as measure: import ...``; then ``measure.impact``."""

    def __init__(self, session: Session, project_slug: str) -> None:
        self.session = session
        self.slug = project_slug
        self.impact = PruneImpact()

    def __enter__(self) -> PruneMeasure:
        self.before = _keys(self.session)
        self.files = _artifact_files(self.session, self.slug)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        self.session.flush()
        after = _keys(self.session)
        gone = {name: keys - after.get(name, set()) for name, keys in self.before.items()}
        self.impact.rows = {name: len(keys) for name, keys in gone.items() if keys}
        removed_artifacts = {key[0] for key in gone.get("artifacts", set())}
        self.impact.files = sorted(
            path for artifact_id, path in self.files.items() if artifact_id in removed_artifacts
        )


__all__ = ["PruneImpact", "PruneMeasure"]
