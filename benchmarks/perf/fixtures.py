"""What the measurements run on: a small built-in world, preset models with a twin `transformers.CLIPModel` holding
the same weights, and collated training batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# The training split's size does not change any per-step or per-row cost; the world's benchmarks are not used here.
WORLD_SIZES = {"full": {"num_train": 2048}, "quick": {"num_train": 256}}
WORLD_BENCHMARK_SIZES = {"num_test": 16, "sugarcrepe_per_kind": 4, "num_winoground": 4, "num_retrieval": 4}


def default_cache_dir() -> Path:
    return Path(os.environ.get("TRIPLETCLIP_CACHE", Path.home() / ".cache" / "tripletclip"))


def benchmark_world(cache_dir: Path, quick: bool, seed: int = 0) -> Path:
    """A built-in world for the benchmarks (generated once, then reused: the world is a deterministic cache)."""
    from dataset_builders.world import generate_world

    size = WORLD_SIZES["quick" if quick else "full"]
    out = Path(cache_dir) / f"perf-world-n{size['num_train']}-seed{seed}"
    return generate_world(out, seed=seed, progress=False, overwrite=True, **size, **WORLD_BENCHMARK_SIZES)


@dataclass
class WorldRows:
    """Training rows of the world as the trainer reads them (images still encoded), and their captions."""

    path: Path
    dataset: object  # datasets.Dataset with deferred image decoding
    rows: list[dict]
    corpus: list[str]


def load_world_rows(world_dir: Path, num_rows: int) -> WorldRows:
    from dataset_builders.collator import defer_image_decoding
    from dataset_builders.sources import load_tripletdata

    dataset = defer_image_decoding(load_tripletdata(Path(world_dir) / "train", split="train"))
    take = min(num_rows, len(dataset))
    rows = [dataset[i] for i in range(take)]
    texts = dataset.select_columns(["caption", "negative_caption"])
    corpus = [text for row in texts for text in (row["caption"], row["negative_caption"])]
    return WorldRows(Path(world_dir), dataset, rows, corpus)


def twin_models(preset: str, tokenizer, seed: int = 0):
    """A random `TripletCLIPModel` of ``preset``, a `transformers.CLIPModel` with identical weights, the processor."""
    from transformers import CLIPModel

    from modeling_tripletclip.presets import create_model_and_processor

    torch.manual_seed(seed)
    model, processor = create_model_and_processor(preset, tokenizer=tokenizer)
    clip = CLIPModel(clip_config(model.config))
    clip.load_state_dict(model.state_dict(), strict=True)
    return model, clip, processor


def clip_config(config):
    """The `transformers.CLIPConfig` of a `TripletCLIPConfig`: the same architecture, without the objective."""
    from transformers import CLIPConfig

    values = config.to_dict()
    for key in ("model_type", "loss_type", "local_loss", "gather_with_grad", "auto_map", "architectures",
                "transformers_version"):
        values.pop(key, None)
    return CLIPConfig(**values)


def tokenizer_for(corpus: list[str], preset: str):
    """A tokenizer trained on ``corpus`` with the preset's vocabulary size (what the trainer does for a preset)."""
    from modeling_tripletclip.presets import PRESETS, train_tokenizer

    text = PRESETS[preset]["text_config"]
    return train_tokenizer(corpus, vocab_size=text["vocab_size"], model_max_length=text["max_position_embeddings"])


def collate(processor, rows: list[dict], batch_size: int) -> dict[str, torch.Tensor]:
    """A training batch of ``batch_size`` triplets (rows repeated when there are fewer), through the collator."""
    from dataset_builders.collator import TripletCollator

    collator = TripletCollator(processor, negative_captions=True, negative_images=True)
    picked = [rows[i % len(rows)] for i in range(batch_size)]
    return collator(picked)
