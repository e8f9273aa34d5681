"""Does reduced decoding change what a trained model scores? SugarCrepe on large JPEGs, decoded fully and reduced.

Training decodes large JPEGs at a reduced scale by default (`dataset_builders.utils.images`); evaluation decodes them
fully unless asked. This measurement trains the tiny preset on a built-in world with the shipped trainer (once; the
model is cached), re-encodes the world's SugarCrepe images as photos much larger than the model's input (4x, JPEG
quality 90), and scores the same items twice with `evaluate_model_detailed`: with full decoding and with
``reduced_image_decoding=True``.

Figures: the change of the overall accuracy (reduced - full), against the accuracy's own sampling noise (its
binomial standard error over the items); the goal, fixed before measuring, is a change no larger than one standard
error. The number of items whose decision flips is in the details.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .timing import Figure, Goal

SECTION = "Data pipeline"
GOAL_WITHIN_NOISE = Goal("<=", 1.0)
UPSCALE = 4
JPEG_QUALITY = 90


@dataclass(frozen=True)
class ScoreSetting:
    num_train: int
    sugarcrepe_per_kind: int
    train_steps: int
    seed: int = 0


SETTINGS = {
    "full": ScoreSetting(num_train=4096, sugarcrepe_per_kind=100, train_steps=300),
    "quick": ScoreSetting(num_train=256, sugarcrepe_per_kind=8, train_steps=4),
}


def _world(cache_dir: Path, setting: ScoreSetting) -> Path:
    from dataset_builders.world import generate_world

    out = cache_dir / f"perf-scores-world-n{setting.num_train}-sc{setting.sugarcrepe_per_kind}-seed{setting.seed}"
    return generate_world(out, num_train=setting.num_train, seed=setting.seed, progress=False, overwrite=True,
                          num_test=16, sugarcrepe_per_kind=setting.sugarcrepe_per_kind, num_winoground=4,
                          num_retrieval=4)


def _trained_model(cache_dir: Path, world: Path, setting: ScoreSetting, timeout: float = 1800) -> Path:
    """The tiny preset trained with the shipped trainer's defaults for ``setting.train_steps`` steps (cached)."""
    out = cache_dir / f"perf-scores-model-{world.name}-steps{setting.train_steps}"
    if (out / "model.safetensors").is_file():
        return out
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, str(repo / "train_accelerate.py"), "--output_dir", str(out), "--world_dir",
               str(world), "--world_num_train", str(setting.num_train), "--max_train_steps", str(setting.train_steps),
               "--eval_benchmarks", "", "--eval_before_training", "false", "--report_to", "jsonl",
               "--overwrite_output_dir", "true", "--seed", str(setting.seed)]
    env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=repo)
    if done.returncode != 0:
        raise RuntimeError(f"Training the model for the score measurement failed:\n{done.stderr[-4000:]}")
    return out


def _large_jpeg_sugarcrepe(world: Path, out: Path) -> Path:
    """The world's SugarCrepe with every image as a JPEG ``UPSCALE`` times larger (written once, atomically)."""
    from PIL import Image

    from dataset_builders.utils import atomic
    from dataset_builders.world.layout import WorldLayout

    if (out / "images").is_dir() and any(out.glob("*.json")):
        return out
    layout = WorldLayout(world)
    with atomic.atomic_path(out, folder=True) as tmp:
        (tmp / "images").mkdir()
        converted: dict[str, str] = {}
        for path in sorted(layout.sugarcrepe.glob("*.json")):
            items = json.loads(path.read_text(encoding="utf-8"))
            for item in items.values():
                name = item["filename"]
                if name not in converted:
                    image = Image.open(layout.sugarcrepe_images / name).convert("RGB")
                    large = image.resize((image.width * UPSCALE, image.height * UPSCALE), Image.Resampling.LANCZOS)
                    converted[name] = Path(name).stem + ".jpg"
                    buffer = io.BytesIO()
                    large.save(buffer, format="JPEG", quality=JPEG_QUALITY)
                    (tmp / "images" / converted[name]).write_bytes(buffer.getvalue())
                item["filename"] = converted[name]
            (tmp / path.name).write_text(json.dumps(items), encoding="utf-8")
    return out


def _correct(result) -> dict[str, list[bool]]:
    """Per subset, whether each item's positive caption scored higher (the official rule)."""
    out = {}
    for key, positive in result.details.items():
        if key.endswith("/positive_scores"):
            subset = key.rsplit("/", 1)[0]
            negative = result.details[f"{subset}/negative_scores"]
            out[subset] = [bool(p > n) for p, n in zip(positive, negative)]
    return out


def measure(cache_dir: Path, quick: bool) -> list[Figure]:
    import torch

    from modeling_tripletclip.evaluation.suite import evaluate_model_detailed
    from modeling_tripletclip.loading import load_model_and_processor

    setting = SETTINGS["quick" if quick else "full"]
    cache_dir = Path(cache_dir)
    world = _world(cache_dir, setting)
    model_dir = _trained_model(cache_dir, world, setting)
    data = _large_jpeg_sugarcrepe(world, cache_dir / f"perf-scores-sugarcrepe-jpeg-x{UPSCALE}-{world.name}")
    model, processor = load_model_and_processor(str(model_dir), device="cpu")
    torch.manual_seed(0)
    results = {}
    for reduced in (False, True):
        results[reduced] = evaluate_model_detailed(model, processor, {"sugarcrepe": str(data)},
                                                   images={"sugarcrepe": str(data / "images")}, progress=False,
                                                   reduced_image_decoding=reduced)["sugarcrepe"]
    full, reduced = _correct(results[False]), _correct(results[True])
    import numpy as np

    moved = np.concatenate([np.abs(results[True].details[key] - results[False].details[key]).ravel()
                            for key in results[False].details if key.endswith("_scores")])
    items = sum(len(v) for v in full.values())
    accuracy_full = sum(map(sum, full.values())) / items
    accuracy_reduced = sum(map(sum, reduced.values())) / items
    flips = sum(a != b for subset in full for a, b in zip(full[subset], reduced[subset]))
    standard_error = math.sqrt(max(accuracy_full * (1 - accuracy_full), 1e-12) / items)
    change = accuracy_reduced - accuracy_full
    detail = {
        "items": items, "flipped_items": flips, "accuracy_full_decoding": accuracy_full,
        "accuracy_reduced_decoding": accuracy_reduced, "change": change, "standard_error": standard_error,
        "per_subset_change": {s: (sum(reduced[s]) - sum(full[s])) / len(full[s]) for s in full},
        "similarities_changed": float(np.mean(moved > 1e-6)),  # the reduced path really ran on these images
        "mean_absolute_similarity_change": float(moved.mean()),
        "max_absolute_similarity_change": float(moved.max()),
        "overall_full": results[False].metrics.get("overall"), "overall_reduced": results[True].metrics.get("overall"),
        "model": f"tiny preset, {setting.train_steps} training steps on a {setting.num_train}-triplet world",
        "images": f"the world's SugarCrepe images upscaled {UPSCALE}x, JPEG quality {JPEG_QUALITY}",
    }
    return [Figure(
        id="data/reduced_decoding/score_change_in_standard_errors",
        section=SECTION,
        label=f"SugarCrepe accuracy change with reduced decoding, in standard errors of the accuracy: trained tiny "
              f"model, {items} items on {UPSCALE}x JPEGs (change {change:+.4f}, {flips} decisions flipped; "
              f"cosine similarities moved by {moved.mean():.4f} on average)",
        value=abs(change) / standard_error,
        unit="ratio",
        goal=GOAL_WITHIN_NOISE,
        detail=detail,
        note="" if not quick else "quick mode: an almost untrained model on a few items",
    )]
