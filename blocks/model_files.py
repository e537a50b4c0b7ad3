"""The public model files the scoring metrics read: names and where their publishers serve them.

Apart from the ScoringModels block (which imports Prefect) so that asking whether a model is
installed (``anime import``'s reference check) costs a file lookup and no Prefect import.
"""

from __future__ import annotations

# LAION's improved aesthetic predictor for CLIP ViT-L/14 (768-d) embeddings.
AESTHETIC_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
AESTHETIC_HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
    "sac%2Blogos%2Bava1-l14-linearMSE.pth"
)
# DINO ViT-B/16 backbone, as VBench's subject_consistency loads it through torch.hub.
DINO_WEIGHTS_URL = (
    "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
)

# deepghs' CCIP (anime character similarity), ONNX, from the Hugging Face repository below.
CCIP_REPO = "deepghs/ccip_onnx"
CCIP_MODEL = "ccip-caformer-24-randaug-pruned"
CCIP_FILES = ("model_feat.onnx", "model_metrics.onnx", "metrics.json")
