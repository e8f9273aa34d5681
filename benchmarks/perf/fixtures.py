"""What the measurements run on: a small built-in world, photo-like JPEG triplets, preset models with a twin
`transformers.CLIPModel` holding the same weights, and collated training batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

# The training split's size does not change any per-step or per-row cost; the world's benchmarks are not used here.
WORLD_SIZES = {"full": {"num_train": 2048}, "quick": {"num_train": 256}}
WORLD_BENCHMARK_SIZES = {"num_test": 16, "sugarcrepe_per_kind": 4, "num_winoground": 4, "num_retrieval": 4}


def default_cache_dir() -> Path:
    from dataset_builders.utils.locations import cache_dir

    return cache_dir()


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
    from dataset_builders.batches import defer_image_decoding
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
    for key in ("model_type", "loss_type", "local_loss", "cyclip_in_modal_weight",
                "cyclip_cross_modal_weight", "auto_map", "architectures",
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
    from dataset_builders.batches import TripletCollator

    collator = TripletCollator(processor, negative_captions=True, negative_images=True)
    picked = [rows[i % len(rows)] for i in range(batch_size)]
    return collator(picked)


# ---------------------------------------------------------------------------------------------- photo-like JPEGs

#: The photographs the JPEG triplets are made from (public domain / CC0, see tests/data/images/SOURCES.md).
PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "data" / "images"
JPEG_QUALITY = 90


def _photo_variant(photo, index: int, size: tuple[int, int]):
    """One photo-like picture of ``size``: a photograph cropped to the aspect at a varying offset, resized, mirrored
    every other time, with a camera-like grain (sigma 3 levels) so that the JPEG holds the detail of a real photo."""
    import numpy as np
    from PIL import Image

    width, height = size
    scale = max(width / photo.width, height / photo.height)
    resized = photo.resize((max(width, round(photo.width * scale)), max(height, round(photo.height * scale))),
                           Image.Resampling.LANCZOS)
    rng = np.random.default_rng(index)
    left = int(rng.integers(0, resized.width - width + 1))
    top = int(rng.integers(0, resized.height - height + 1))
    picture = resized.crop((left, top, left + width, top + height))
    if index % 2:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(picture, dtype=np.float32) + rng.normal(0.0, 3.0, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photo_triplets(cache_dir: Path, size: tuple[int, int], num_rows: int, captions: list[str]) -> Path:
    """TripletData of photo-like JPEGs (quality 90) of ``size`` (width, height), as web-crawled datasets such as
    CC3M and CC12M store them, with the world's captions; generated once into the cache, atomically."""
    import io

    from PIL import Image

    from dataset_builders.hub_layout import write_tripletdata
    from dataset_builders.utils import atomic

    out = Path(cache_dir) / f"perf-jpeg-{size[0]}x{size[1]}-q{JPEG_QUALITY}-n{num_rows}"
    if (out / "README.md").is_file():
        return out
    photos = [Image.open(path).convert("RGB") for path in sorted(PHOTOS.glob("*.*g"))]
    if not photos:
        raise FileNotFoundError(f"No photographs in {PHOTOS}: the repository's tests/data/images is needed.")

    def jpeg(index: int) -> bytes:
        buffer = io.BytesIO()
        _photo_variant(photos[index % len(photos)], index, size).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()

    rows = ({"id": str(i), "caption": captions[(2 * i) % len(captions)],
             "negative_caption": captions[(2 * i + 1) % len(captions)],
             "image": {"bytes": jpeg(2 * i), "path": None}, "negative_image": {"bytes": jpeg(2 * i + 1), "path": None}}
            for i in range(num_rows))
    with atomic.atomic_path(out, folder=True) as tmp:
        write_tripletdata(rows, tmp, progress=False, card=True)
    return out


def load_rows(folder: Path, num_rows: int) -> WorldRows:
    """Rows of any TripletData folder as the trainer reads them (images still encoded)."""
    from dataset_builders.batches import defer_image_decoding
    from dataset_builders.sources import load_tripletdata

    dataset = defer_image_decoding(load_tripletdata(Path(folder), split="train"))
    rows = [dataset[i] for i in range(min(num_rows, len(dataset)))]
    return WorldRows(Path(folder), dataset, rows, [])


def trainer_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer the trainer builds with its defaults (AdamW, the paper's settings)."""
    from modeling_tripletclip.training.config import TrainingConfig
    from modeling_tripletclip.training.optim import create_optimizer

    return create_optimizer(model, TrainingConfig())
