"""Which scoring models to load, and where from. Edited in the Prefect UI."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field

from blocks.model_files import AESTHETIC_HEAD_FILE, CCIP_FILES, CCIP_MODEL

FaceEmbedderName = Literal["insightface", "ccip"]


class ScoringModels(Block):
    """Models behind the quality metrics.

    Defaults are the usual public ones, fetched the way each library normally fetches them
    when the machine has internet; a local path always works offline.
    """

    _block_type_name = "Scoring Models"
    _block_type_slug = "anime-scoring-models"
    _description = "Models for face similarity, aesthetics, style and temporal metrics."
    # A generic Prefect logo until the studio hosts its own; docs: editing blocks.
    _logo_url = (
        "https://raw.githubusercontent.com/PrefectHQ/prefect/"
        "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
    )
    _documentation_url = "https://docs.prefect.io/latest/develop/blocks"

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto picks CUDA when a GPU is present."
    )
    face_embedder: FaceEmbedderName = Field(
        "insightface",
        description=(
            "identity model for face_similarity and sheet_consistency: insightface (buffalo_l, "
            "trained on photographs) or ccip (deepghs' anime character model). A project's "
            "settings.face_embedder overrides it."
        ),
    )
    face_model: str = Field(
        "buffalo_l", description="InsightFace model pack name (under face_root) or a folder path."
    )
    ccip_model: str = Field(
        CCIP_MODEL,
        description=(
            "CCIP model: a name (a folder under ~/.cache/tower-anime/models/ccip/) or a folder "
            f"path; the folder holds {', '.join(CCIP_FILES)}."
        ),
    )
    face_root: str | None = Field(
        None, description="InsightFace root folder (default ~/.insightface)."
    )
    face_det_size: int = Field(640, ge=32, description="face detector input size (square).")
    clip_model: str = Field("ViT-L-14", description="open_clip architecture.")
    clip_pretrained: str = Field(
        "openai",
        description=(
            "open_clip pretrained tag, or a local checkpoint path (its activation follows the "
            "checkpoint: the open_clip_config.json beside it, or OpenAI's file names)."
        ),
    )
    clip_cache_dir: str | None = Field(
        None,
        description="where open_clip keeps downloaded weights (default: the Hugging Face cache).",
    )
    aesthetic_head: str | None = Field(
        None,
        description=(
            "LAION improved-aesthetic-predictor weights (.pth) for the CLIP model; default "
            f"~/.cache/tower-anime/models/{AESTHETIC_HEAD_FILE}."
        ),
    )
    lpips_net: Literal["alex", "vgg", "squeeze"] = Field(
        "alex", description="LPIPS backbone for temporal_lpips (alex, vgg or squeeze)."
    )
    lpips_backbone: str | None = Field(
        None,
        description=(
            "torchvision backbone weights for LPIPS (alexnet-owt-7be5be79.pth for alex); "
            "default: the torch hub cache, checkpoints/<torchvision's file name>."
        ),
    )
    lpips_pnet_rand: bool = Field(
        False,
        description=(
            "refused when true: a randomly initialised LPIPS backbone gives distances that are "
            "not perceptual (kept so saved blocks still load)."
        ),
    )
    subject_backbone: Literal["clip", "dino"] = Field(
        "clip", description="image features for subject_consistency: CLIP, or DINO ViT-B/16."
    )
    dino_weights: str | None = Field(
        None,
        description=(
            "DINO ViT-B/16 weights path, if used (default: torch hub cache, "
            "checkpoints/dino_vitbase16_pretrain.pth)."
        ),
    )
    dino_arch: str = Field(
        "vit_base_patch16_224.dino", description="timm architecture the DINO weights fit."
    )
    batch_size: int = Field(16, ge=1, description="images per model call.")
    half_precision: bool = Field(True, description="fp16 on CUDA; ignored on CPU.")
    allow_downloads: bool = Field(
        True,
        description=(
            "fetch missing public weights when the download host answers; off: local files only."
        ),
    )

    def for_project(self, settings: dict | None) -> ScoringModels:
        """This block with the project's own choice of identity model (settings.face_embedder)."""
        choice = (settings or {}).get("face_embedder")
        if not choice or choice == self.face_embedder:
            return self
        if choice not in ("insightface", "ccip"):
            raise ValueError(
                f"project settings.face_embedder must be 'insightface' or 'ccip', got {choice!r}"
            )
        return self.model_copy(update={"face_embedder": choice})
