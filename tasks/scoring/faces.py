"""Face metrics: do the cast's faces in a render match their references, does a sheet agree.

Similarity is the cosine of unit-length ArcFace embeddings (1.0 = the same face).

* ``face_similarity``: per cast character, the face's cosine against each of the character's
  reference embeddings, reduced to one number. The default reduction is **max** (the best
  matching reference): a character sheet holds several views, and a frontal render should
  not be pulled down by the profile reference. ``reduce="mean"`` is stricter. With several
  faces and several characters, faces are assigned one-to-one to characters so that the
  total similarity is highest (Hungarian method), not greedily.
* ``sheet_consistency``: the value is the **mean** pairwise cosine between the main faces
  (largest box) of the sheet's images; the least-agreeing pair is reported beside it so a
  single odd image is visible in the explanation.

"No face found" is its own outcome: value None with that reason, never 0.0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.optimize import linear_sum_assignment

from tasks.scoring.face_embedder import (
    DetectedFace,
    FaceEmbedder,
    ImageInput,
    load_face_embedder,
    to_rgb_array,
)
from tasks.scoring.results import MetricResult

FACE_SIMILARITY = "face_similarity"
SHEET_CONSISTENCY = "sheet_consistency"
NO_FACE = "no face found"

Reduction = Literal["max", "mean"]


# --- embeddings ------------------------------------------------------------------------------


def reference_matrix(references: Any, *, character: str = "") -> np.ndarray:
    """References as an N x d float32 matrix of unit rows (one vector becomes 1 x d)."""
    matrix = np.asarray(references, dtype=np.float32)
    where = f" for character {character!r}" if character else ""
    if matrix.ndim == 1:
        matrix = matrix[None, :] if matrix.size else matrix.reshape(0, 0)
    if matrix.ndim != 2:
        raise ValueError(f"reference embeddings{where} must be N x d, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"reference embeddings{where} contain NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"reference embeddings{where} contain an all-zero vector")
    return matrix / norms if matrix.size else matrix


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of unit vectors (rows), clamped to [-1, 1]: float32 rounding puts the cosine of
    a face with itself at 1.0000001, above the documented range."""
    return np.clip(a @ b, -1.0, 1.0)


def reduce_cosines(cosines: np.ndarray, reduce: Reduction) -> float:
    if reduce == "max":
        return float(np.max(cosines))
    if reduce == "mean":
        return float(np.mean(cosines))
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")


def main_face(faces: Sequence[DetectedFace]) -> DetectedFace | None:
    """The face a sheet image is about: the largest box, then the most confident."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.area, f.det_score))


# --- assignment ------------------------------------------------------------------------------


def assign_faces(similarity: np.ndarray) -> list[tuple[int, int]]:
    """Faces (rows) to characters (columns), one-to-one, with the highest total similarity.

    With fewer faces than characters some characters get none, and the other way round.
    Returned as (face index, character index) pairs sorted by character.
    """
    matrix = np.asarray(similarity, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"similarity must be faces x characters, got shape {matrix.shape}")
    if 0 in matrix.shape:
        return []
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True), key=lambda pair: pair[1])


# --- face similarity -------------------------------------------------------------------------


def _face_details(index: int, face: DetectedFace) -> dict[str, Any]:
    return {
        "face_index": index,
        "bbox": [round(v, 2) for v in face.bbox],
        "det_score": round(face.det_score, 4),
    }


def face_similarity_from_faces(
    faces: Sequence[DetectedFace],
    cast: Mapping[str, Any],
    *,
    reduce: Reduction = "max",
    model: str = "",
) -> list[MetricResult]:
    """One MetricResult per cast character (subject = slug), from already detected faces."""
    references = {slug: reference_matrix(refs, character=slug) for slug, refs in cast.items()}
    judged = [slug for slug, refs in references.items() if refs.shape[0] > 0]
    common = {"faces_found": len(faces), "cast": list(references), "reduction": reduce}
    for slug in judged:
        dim = references[slug].shape[1]
        if faces and faces[0].embedding.shape[0] != dim:
            raise ValueError(
                f"reference embeddings for {slug!r} have {dim} dimensions but the face model "
                f"{model or '(unnamed)'} gives {faces[0].embedding.shape[0]}: references were "
                "made with another model; recompute them"
            )

    cosines = {
        slug: [cosine(references[slug], face.embedding) for face in faces] for slug in judged
    }  # per character, per face: cosine against each reference
    scores = np.array(
        [[reduce_cosines(cosines[slug][f], reduce) for slug in judged] for f in range(len(faces))]
    ).reshape(len(faces), len(judged))
    assigned = {judged[c]: f for f, c in assign_faces(scores)}

    results: list[MetricResult] = []
    for slug in references:
        details = dict(common)
        if slug not in judged:
            results.append(
                MetricResult(
                    metric=FACE_SIMILARITY,
                    value=None,
                    subject=slug,
                    model=model,
                    reason=f"no reference embeddings for character {slug!r}",
                    details=details,
                )
            )
            continue
        face_index = assigned.get(slug)
        if face_index is None:
            reason = NO_FACE
            if faces:
                reason += (
                    f" for this character ({len(faces)} face(s) went to other cast characters)"
                )
            results.append(
                MetricResult(
                    metric=FACE_SIMILARITY,
                    value=None,
                    subject=slug,
                    model=model,
                    reason=reason,
                    details=details,
                )
            )
            continue
        details.update(_face_details(face_index, faces[face_index]))
        details["reference_cosines"] = [float(c) for c in cosines[slug][face_index]]
        details["other_faces"] = [i for i in range(len(faces)) if i != face_index]
        results.append(
            MetricResult(
                metric=FACE_SIMILARITY,
                value=float(scores[face_index, judged.index(slug)]),
                subject=slug,
                model=model,
                details=details,
            )
        )
    return results


def face_similarity(
    image: ImageInput,
    cast: Mapping[str, Any],
    embedder: FaceEmbedder | None = None,
    *,
    reduce: Reduction = "max",
) -> list[MetricResult]:
    """Detect and embed the faces in ``image`` and compare them with the cast's references.

    ``cast`` maps character slug -> reference embeddings (N x d). Returns one MetricResult per
    cast character, in cast order; see the module docstring for the reduction and assignment.
    Without ``embedder``, the default ScoringModels' face model is loaded.
    """
    embedder = embedder or load_face_embedder()
    faces = embedder.detect_and_embed(to_rgb_array(image))
    return face_similarity_from_faces(faces, cast, reduce=reduce, model=embedder.name)


# --- references and sheets -------------------------------------------------------------------


class ReferenceEmbeddings(BaseModel):
    """Main-face embeddings of a character's reference images, in image order."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    labels: list[str]  # images that gave a face, one per row of ``embeddings``
    embeddings: np.ndarray  # N x d, unit rows
    without_face: list[str]


def _labelled(images: Sequence[ImageInput] | Mapping[str, ImageInput]) -> list[tuple[str, Any]]:
    if isinstance(images, Mapping):
        return [(str(label), image) for label, image in images.items()]
    labelled: list[tuple[str, Any]] = []
    for i, image in enumerate(images):
        label = Path(image).name if isinstance(image, str | os.PathLike) else f"image {i}"
        if any(label == seen for seen, _ in labelled):
            label = f"{label} (#{i})"
        labelled.append((label, image))
    return labelled


def main_face_embeddings(
    images: Sequence[ImageInput] | Mapping[str, ImageInput], embedder: FaceEmbedder | None = None
) -> dict[str, np.ndarray | None]:
    """Label -> embedding of the image's main face, or None when it has no face."""
    embedder = embedder or load_face_embedder()
    embeddings: dict[str, np.ndarray | None] = {}
    for label, image in _labelled(images):
        face = main_face(embedder.detect_and_embed(to_rgb_array(image)))
        embeddings[label] = None if face is None else face.embedding
    return embeddings


def embed_references(
    images: Sequence[ImageInput] | Mapping[str, ImageInput], embedder: FaceEmbedder | None = None
) -> ReferenceEmbeddings:
    """A character's reference embeddings from its approved images (one main face each)."""
    embedder = embedder or load_face_embedder()
    found = main_face_embeddings(images, embedder)
    labels = [label for label, emb in found.items() if emb is not None]
    rows = [found[label] for label in labels]
    return ReferenceEmbeddings(
        model=embedder.name,
        labels=labels,
        embeddings=np.stack(rows) if rows else np.zeros((0, 0), np.float32),
        without_face=[label for label, emb in found.items() if emb is None],
    )


def sheet_consistency_from_embeddings(
    embeddings: Mapping[str, Any],
    *,
    subject: str | None = None,
    model: str = "",
) -> MetricResult:
    """Mean pairwise cosine of the sheet's main-face embeddings (label -> vector or None)."""
    present = {
        label: reference_matrix(vec, character=subject or "")[0]
        for label, vec in embeddings.items()
        if vec is not None and np.size(vec) > 0
    }
    missing = [label for label in embeddings if label not in present]
    details: dict[str, Any] = {"images": len(embeddings), "images_without_face": missing}
    if len(present) < 2:
        reason = f"{NO_FACE}: fewer than two sheet images with a face ({len(present)} of "
        reason += f"{len(embeddings)})"
        return MetricResult(
            metric=SHEET_CONSISTENCY,
            value=None,
            subject=subject,
            model=model,
            reason=reason,
            details=details,
        )
    pairs = [
        {"a": a, "b": b, "cosine": float(cosine(present[a], present[b]))}
        for a, b in combinations(present, 2)
    ]
    cos = np.array([p["cosine"] for p in pairs])
    worst = pairs[int(np.argmin(cos))]
    details.update(
        {
            "aggregate": "mean pairwise cosine",
            "mean": float(cos.mean()),
            "min": float(cos.min()),
            "min_pair": worst,
            "pairs": pairs,
        }
    )
    return MetricResult(
        metric=SHEET_CONSISTENCY,
        value=float(cos.mean()),
        subject=subject,
        model=model,
        details=details,
    )


def sheet_consistency(
    images: Sequence[ImageInput] | Mapping[str, ImageInput],
    embedder: FaceEmbedder | None = None,
    *,
    subject: str | None = None,
) -> MetricResult:
    """How well the faces of a character sheet agree with each other (default gate 0.85).

    ``images``: a list (labelled by file name or position) or label -> image.
    """
    embedder = embedder or load_face_embedder()
    found = main_face_embeddings(images, embedder)
    return sheet_consistency_from_embeddings(found, subject=subject, model=embedder.name)
