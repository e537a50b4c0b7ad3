"""Scoring benchmark: batched metrics versus a naive per-frame / per-pair Python loop.

A 120-frame 512x512 clip (a disk gliding over a gradient) is scored by each metric twice: the
batched code in tasks/scoring/ and the loop one would write first (one model call per frame or
pair). Prints seconds and frames per second: the median of up to --repeats runs, fewer once a
timing has used --budget seconds. The models are loaded beforehand, outside the timings.

    .venv/bin/python -m bench.scoring                 # stand-in tiny models, CPU
    .venv/bin/python -m bench.scoring --device cuda   # on a GPU machine
    .venv/bin/python -m bench.scoring --real          # the block's real weights (must be present)
    .venv/bin/python -m bench.scoring --architectures real   # real architectures, random weights

``--architectures real`` builds every metric's shipped architecture with random weights, writes
it to files and loads those through the real loaders (bench/real_architectures.py): the
throughput of the real models without their downloads. It adds the identity models' rows
(InsightFace detection + embedding per frame; CCIP per frame and batched).

Run it as a module from the repository root: the stand-in models come from the tests
(tests/scoring/stand_in_models.py), which are not installed with the package.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from blocks.scoring import ScoringModels
from tasks.scoring.aesthetic import aesthetic, aesthetic_of_frames
from tasks.scoring.loading.errors import ModelUnavailable
from tasks.scoring.loading.lpips import load_lpips
from tasks.scoring.results import MetricResult
from tasks.scoring.style import style_adherence, style_adherence_batch
from tasks.scoring.temporal import (
    FlowBlendInterpolator,
    LinearBlendInterpolator,
    load_subject_embedder,
    motion_smoothness,
    subject_consistency,
    temporal_lpips,
)


def make_clip(frames: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], axis=-1)
    radius = size // 8
    clip = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        cx = radius + (size - 2 * radius) * t / max(1, frames - 1)
        cy = size / 2 + size / 6 * np.sin(t / 9)
        frame = bg.copy()
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = (250, 240, 40)
        clip[t] = frame
    return clip


# --------------------------------------------------------------------------- naive loops


def naive_temporal_lpips(frames: np.ndarray, models: ScoringModels) -> float:
    net = load_lpips(models)
    total = 0.0
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.inference_mode():
            total += float(net.module(x[:1].to(net.runtime.device), x[1:].to(net.runtime.device)))
    return total / (len(frames) - 1)


def naive_subject_consistency(frames: np.ndarray, models: ScoringModels) -> float:
    # VBench's own loop: one frame through the backbone at a time.
    embedder = load_subject_embedder(models)
    first = previous = None
    total = 0.0
    for i, frame in enumerate(frames):
        feature = embedder.embed([frame])[0]
        if i == 0:
            first = feature
        else:
            sim_pre = max(0.0, float(torch.dot(previous, feature)))
            sim_fir = max(0.0, float(torch.dot(first, feature)))
            total += (sim_pre + sim_fir) / 2
        previous = feature
    return total / (len(frames) - 1)


def naive_aesthetic(frames: np.ndarray, models: ScoringModels) -> float:
    return float(np.mean([aesthetic(frame, models).value for frame in frames]))


def naive_style(frames: np.ndarray, refs: list[np.ndarray], models: ScoringModels) -> float:
    return float(np.mean([style_adherence(frame, refs, models).value for frame in frames]))


def naive_ccip(frames: np.ndarray, embedder) -> int:
    return sum(len(embedder.detect_and_embed(frame)) for frame in frames)


def batched_ccip(frames: np.ndarray, embedder, batch: int) -> int:
    steps = range(0, len(frames), batch)
    return sum(len(embedder.embed(list(frames[i : i + batch]))) for i in steps)


def faces_per_frame(frames: np.ndarray, embedder) -> int:
    # face_similarity's cost per frame: detection, alignment and one embedding per face found.
    return sum(len(embedder.detect_and_embed(frame)) for frame in frames)


def naive_motion_smoothness(frames: np.ndarray) -> float:
    errors = []
    for i in range(1, len(frames) - 1, 2):
        before, after = frames[i - 1].astype(np.float64), frames[i + 1].astype(np.float64)
        rebuilt = np.floor((before + after + 1) / 2)
        errors.append(np.abs(frames[i] - rebuilt).mean())
    return 1 - float(np.mean(errors)) / 255


# --------------------------------------------------------------------------- timing


def _value(result: object) -> float:
    if isinstance(result, MetricResult):
        return float(result.value) if result.value is not None else float("nan")
    if isinstance(result, list):
        return float(np.mean([_value(r) for r in result]))
    return float(result)  # type: ignore[arg-type]


def timed(fn: Callable[[], object], repeats: int, budget_s: float) -> tuple[float, int, float]:
    """Median seconds of up to ``repeats`` runs, stopping early once ``budget_s`` is spent
    (the naive LPIPS loop alone takes most of a minute on 2 CPU cores), the run count, and the
    metric value (so batched and naive can be seen to agree)."""
    runs: list[float] = []
    result: object = None
    while len(runs) < repeats and (not runs or sum(runs) < budget_s):
        started = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), len(runs), _value(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=10.0, help="stop repeating a timing after this many s"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--real", action="store_true", help="use the block defaults' real weights, not stand-ins"
    )
    parser.add_argument(
        "--architectures",
        choices=["stand-in", "real"],
        default="stand-in",
        help="stand-in tiny models, or the real architectures with random weights from files",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the slow naive loops")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.real:
        models = ScoringModels(allow_downloads=False)
    elif args.architectures == "real":
        from bench.real_architectures import write_real_architectures

        folder = Path(tempfile.mkdtemp(prefix="bench-real-architectures-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # 2.3 GB of random weights
        started = time.perf_counter()
        models = write_real_architectures(folder)
        print(f"real architectures written to {folder} in {time.perf_counter() - started:.0f} s")
    else:
        from tests.scoring.stand_in_models import write_stand_in_models

        folder = Path(tempfile.mkdtemp(prefix="bench-models-"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = write_stand_in_models(folder)
            # LPIPS as shipped (AlexNet), random weights from a file: its cost is the real one.
            import torchvision.models

            alex = folder / "alexnet-random.pth"
            torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
        models = models.model_copy(update={"lpips_net": "alex", "lpips_backbone": str(alex)})
    models = models.model_copy(update={"device": args.device, "batch_size": args.batch_size})
    frames = make_clip(args.frames, args.size)
    refs = [frames[0], frames[len(frames) // 2], 255 - frames[-1]]
    n = len(frames)

    rows: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        (
            "temporal_lpips",
            lambda: temporal_lpips(frames, models),
            lambda: naive_temporal_lpips(frames, models),
        ),
        (
            "subject_consistency",
            lambda: subject_consistency(frames, models),
            lambda: naive_subject_consistency(frames, models),
        ),
        (
            "aesthetic (per frame)",
            lambda: aesthetic_of_frames(frames, models),
            lambda: naive_aesthetic(frames, models),
        ),
        (
            "style_adherence",
            lambda: style_adherence_batch(list(frames), refs, models),
            lambda: naive_style(frames, refs, models),
        ),
        (
            "motion_smoothness linear",
            lambda: motion_smoothness(frames, LinearBlendInterpolator(), models),
            lambda: naive_motion_smoothness(frames),
        ),
        (
            "motion_smoothness flow",
            lambda: motion_smoothness(frames, FlowBlendInterpolator(), models),
            None,
        ),
    ]
    if args.architectures == "real":
        from tasks.scoring.face_embedder import load_face_embedder

        face = load_face_embedder(models)
        ccip = load_face_embedder(models.model_copy(update={"face_embedder": "ccip"}))
        rows += [
            ("face insightface (faces)", lambda: faces_per_frame(frames, face), None),
            (
                "face ccip (faces)",
                lambda: batched_ccip(frames, ccip, args.batch_size),
                lambda: naive_ccip(frames, ccip),
            ),
        ]
    try:
        kind = (
            "real weights"
            if args.real
            else "real architectures, random weights from files"
            if args.architectures == "real"
            else "stand-in tiny models"
        )
        print(
            f"{n} frames {args.size}x{args.size}, {kind}, device={args.device}, "
            f"batch={args.batch_size}, median of up to {args.repeats} runs (torch threads: "
            f"{torch.get_num_threads()})"
        )
        header = (
            f"{'metric':26} {'value':>8} {'batched s':>10} {'fps':>8} {'runs':>4} "
            f"{'naive s':>10} {'fps':>8} {'runs':>4} {'x':>6} {'value':>8}"
        )
        print(header)
        print("-" * len(header))
        # Warm-up on a few frames: loads every model once, outside the timings.
        temporal_lpips(frames[:3], models)
        subject_consistency(frames[:3], models)
        aesthetic_of_frames(frames[:3], models)
        for name, batched, naive in rows:
            fast, fast_runs, value = timed(batched, args.repeats, args.budget)
            if naive is None or args.no_naive:
                naive_cols = f"{'-':>10} {'-':>8} {'-':>4} {'-':>6} {'-':>8}"
            else:
                slow, slow_runs, naive_value = timed(naive, args.repeats, args.budget)
                naive_cols = (
                    f"{slow:10.2f} {n / slow:8.1f} {slow_runs:4d} {slow / fast:6.1f} "
                    f"{naive_value:8.4f}"
                )
            print(
                f"{name:26} {value:8.4f} {fast:10.2f} {n / fast:8.1f} {fast_runs:4d} {naive_cols}",
                flush=True,
            )
    except ModelUnavailable as exc:
        print(f"cannot benchmark: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
