"""The model kit: every weight file the scoring metrics read, where the ScoringModels block
looks for it, whether it is there, and how to get it (``anime models status | fetch | check``).

Downloads go where the loaders look, so a fetched file is used without editing the block; an
offline machine gets the exact files, URLs and target paths to copy by hand, or copies them
from a folder (``fetch --from``). Published checksums are checked: torchvision's file names
carry the first hex digits of their sha256, Hugging Face files their full sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blocks.model_files import AESTHETIC_HEAD_URL, CCIP_FILES, CCIP_REPO, DINO_WEIGHTS_URL
from tasks.scoring.loading.errors import ModelUnavailable

if TYPE_CHECKING:
    from blocks.scoring import ScoringModels

HF = "https://huggingface.co"


@dataclass
class KitFile:
    """One file a metric reads: where it comes from and where the block looks for it."""

    url: str
    target: Path
    sha256: str | None = None  # full, or a published prefix (torchvision)
    unzip: bool = False  # a zip whose contents go into ``target`` (a folder)
    # Hugging Face files are fetched with huggingface_hub (it checks their sha256 itself):
    # into its cache (``hf_cache``) or into ``hf_local_dir`` as <dir>/<filename>.
    hf_repo: str | None = None
    hf_filename: str | None = None
    hf_cache: str | None = None
    hf_local_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.target.name if not self.unzip else os.path.basename(self.url)

    def present(self) -> bool:
        return self.target.is_dir() if self.unzip else self.target.is_file()


@dataclass
class KitModel:
    name: str  # what ``anime models fetch NAME`` calls it
    metrics: str
    files: list[KitFile]
    load: Callable[[], object]
    note: str = ""
    used: bool = True  # False: the block does not use it now (shown, not required)
    problems: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return all(f.present() for f in self.files)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.is_file() else 0


def _clip_files(models: ScoringModels) -> tuple[list[KitFile], str]:
    import open_clip
    from huggingface_hub.constants import HF_HUB_CACHE

    pretrained = os.path.expanduser(models.clip_pretrained)
    if os.path.isfile(pretrained) or "/" in models.clip_pretrained:
        return [
            KitFile(url="(a local file: ScoringModels.clip_pretrained)", target=Path(pretrained))
        ], ""
    if models.clip_model.startswith(("local-dir:", "hf-hub:")):
        where = models.clip_model.split(":", 1)[1]
        return [], f"{models.clip_model}: the folder or repository {where} (open_clip reads it)"
    cfg = open_clip.get_pretrained_cfg(models.clip_model.replace("/", "-"), models.clip_pretrained)
    hf = cfg.get("hf_hub", "").rstrip("/")
    if not hf:
        return [], f"pretrained tag {models.clip_pretrained!r} (open_clip downloads it itself)"
    repo = "/".join(hf.split("/")[:2])
    filename = hf.split("/", 2)[2] if hf.count("/") >= 2 else "open_clip_model.safetensors"
    cache = Path(models.clip_cache_dir or HF_HUB_CACHE)
    from tasks.scoring.loading.clip import _cached_clip_tag, clip_studio_path

    found = _cached_clip_tag(cfg, models.clip_cache_dir)
    # Downloads land in the Hugging Face cache; copies by hand in the studio's model folder.
    target = Path(found) if found else clip_studio_path(repo, filename)
    item = KitFile(
        url=f"{HF}/{repo}/resolve/main/{filename}",
        target=target,
        hf_repo=repo,
        hf_filename=filename,
        hf_cache=models.clip_cache_dir,
    )
    return [item], f"Hugging Face cache {cache} (repository {repo}), or {target.parent}"


def kit(models: ScoringModels) -> list[KitModel]:
    """Every model the block's metrics need, in the order a studio fetches them."""
    from tasks.scoring.loading.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from tasks.scoring.ccip import ccip_folder
    from tasks.scoring.face_embedder import DEFAULT_FACE_ROOT, load_face_embedder, pack_url
    from tasks.scoring.loading.aesthetic_head import load_aesthetic_head
    from tasks.scoring.loading.clip import load_clip
    from tasks.scoring.loading.dino import dino_weights_path, load_dino
    from tasks.scoring.loading.lpips import load_lpips, lpips_backbone_path, lpips_backbone_url
    from tasks.scoring.loading.places import aesthetic_head_path

    clip_files, clip_note = _clip_files(models)
    lpips_url = lpips_backbone_url(models.lpips_net)
    lpips_target = lpips_backbone_path(models)
    face_folder = (
        Path(models.face_model).expanduser()
        if "/" in models.face_model or models.face_model.startswith(("~", "."))
        else Path(models.face_root or DEFAULT_FACE_ROOT).expanduser() / "models" / models.face_model
    )
    ccip = ccip_folder(models)
    as_insightface = models.model_copy(update={"face_embedder": "insightface"})
    as_ccip = models.model_copy(update={"face_embedder": "ccip"})
    return [
        KitModel(
            "clip",
            "aesthetic, style_adherence, subject_consistency (clip backbone)",
            clip_files,
            lambda: load_clip(models),
            note=clip_note,
        ),
        KitModel(
            "aesthetic",
            "aesthetic (LAION improved-aesthetic-predictor head)",
            [KitFile(AESTHETIC_HEAD_URL, aesthetic_head_path(models))],
            lambda: load_aesthetic_head(models),
        ),
        KitModel(
            "lpips",
            f"temporal_lpips (torchvision {models.lpips_net} backbone; the linear layers ship "
            "with the lpips package)",
            [KitFile(lpips_url, lpips_target, sha256=_torchvision_hash(lpips_url))],
            lambda: load_lpips(models),
        ),
        KitModel(
            "dino",
            "subject_consistency (subject_backbone: dino)",
            [KitFile(DINO_WEIGHTS_URL, dino_weights_path(models))],
            lambda: load_dino(models.model_copy(update={"subject_backbone": "dino"})),
            used=models.subject_backbone == "dino",
        ),
        KitModel(
            "insightface",
            "face_similarity, sheet_consistency (face_embedder: insightface)",
            [KitFile(pack_url(face_folder.name), face_folder, unzip=True)],
            lambda: load_face_embedder(as_insightface),
            used=models.face_embedder == "insightface",
        ),
        KitModel(
            "ccip",
            "face_similarity, sheet_consistency (face_embedder: ccip, anime characters)",
            [
                KitFile(
                    f"{HF}/{CCIP_REPO}/resolve/main/{ccip.name}/{name}",
                    ccip / name,
                    hf_repo=CCIP_REPO,
                    hf_filename=f"{ccip.name}/{name}",
                    hf_local_dir=ccip.parent,
                )
                for name in CCIP_FILES
            ],
            lambda: load_face_embedder(as_ccip),
            used=models.face_embedder == "ccip",
        ),
    ]


def _torchvision_hash(url: str) -> str | None:
    # torchvision names its files <name>-<first 8+ hex digits of the sha256>.pth
    stem = os.path.basename(url).rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def select(models: ScoringModels, names: list[str] | None) -> list[KitModel]:
    entries = kit(models)
    if not names:
        return [e for e in entries if e.used]
    known = {e.name: e for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the kit has {sorted(known)}")
    return [known[n] for n in names]


def check_sha(path: Path, expected: str | None) -> str | None:
    """None when the file matches (or nothing is published), else the problem."""
    if not expected or path.is_dir():
        return None
    actual = sha256_of(path)
    if not actual.startswith(expected):
        return f"sha256 {actual[:16]}... does not match the published {expected}"
    return None


def place(source: Path, item: KitFile) -> None:
    """Copy (or unzip) ``source`` to the file's target, atomically, after the checksum."""
    problem = check_sha(source, item.sha256)
    if problem:
        raise ValueError(f"{source}: {problem}; not placed at {item.target}")
    item.target.parent.mkdir(parents=True, exist_ok=True)
    if item.unzip:
        with (
            tempfile.TemporaryDirectory(dir=item.target.parent) as tmp,
            zipfile.ZipFile(source) as archive,
        ):
            archive.extractall(tmp)
            inner = [p for p in Path(tmp).iterdir()]
            root = inner[0] if len(inner) == 1 and inner[0].is_dir() else Path(tmp)
            if item.target.exists():
                shutil.rmtree(item.target)
            shutil.move(str(root), item.target)
        return
    fd, tmp = tempfile.mkstemp(dir=item.target.parent, suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, item.target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(item: KitFile, *, progress: bool = True) -> None:
    """Download to a temporary file beside the target (with a progress bar), check, place."""
    import torch

    if item.hf_repo and item.hf_filename:
        from huggingface_hub import hf_hub_download

        if item.hf_local_dir is not None:
            hf_hub_download(item.hf_repo, item.hf_filename, local_dir=item.hf_local_dir)
        else:
            path = hf_hub_download(item.hf_repo, item.hf_filename, cache_dir=item.hf_cache)
            item.target = Path(path)
        return
    item.target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=item.target.parent, suffix=".download")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(item.url, tmp, progress=progress)
        place(Path(tmp), item)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def loads(entry: KitModel) -> str:
    """'yes', or why not (the loader's own message)."""
    try:
        entry.load()
    except ModelUnavailable as exc:
        return f"no: {exc.problem}"
    except Exception as exc:  # a broken file must show here, not crash the listing
        return f"no: {type(exc).__name__}: {exc}"
    return "yes"
