"""CLIP-score filtering of triplets (the TripletCLIP++ ablation).

A pretrained CLIP-like model scores each triplet ``(x, y, x', y')`` as ``(s(x, y) + s(x', y')) / 2``, where ``s`` is
the cosine similarity of the image and text embeddings; the best triplets are kept, either the top ``k`` or those at
or above a threshold. Any checkpoint with ``get_image_features`` / ``get_text_features`` works (CLIP, SigLIP,
TripletCLIP checkpoints in either form).

The math is in pure functions (:func:`triplet_score`, :func:`select_rows`); :class:`CLIPScorer` computes the scores,
and :func:`filter_tripletdata` writes the kept rows of a TripletData folder as a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.devices import resolve_device, resolve_dtype
from ..utils.errors import InputError
from ..utils.images import decode_image

logger = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def triplet_score(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``(s(x, y) + s(x', y')) / 2`` from the positive pairs' and the negative pairs' similarities, shape ``(n,)``."""
    positive, negative = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if positive.shape != negative.shape:
        raise ValueError(f"Positive and negative scores differ in shape: {positive.shape} vs {negative.shape}.")
    return (positive + negative) / 2


def select_rows(scores: Sequence[float], top_k: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Indices (ascending) of the rows to keep: the ``top_k`` highest scores and/or those ``>= threshold``.

    With both, a row must pass both. Ties at the ``k``-th place go to the earlier row. Missing scores (NaN) are never
    kept. With neither, every row with a score is kept.
    """
    scores = np.asarray(scores, dtype=np.float64)
    keep = ~np.isnan(scores)
    if threshold is not None:
        keep &= scores >= threshold
    if top_k is not None:
        if top_k < 0:
            raise ValueError(f"top_k must be zero or more, got {top_k}.")
        candidates = np.flatnonzero(keep)
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        keep = np.zeros_like(keep)
        keep[order[:top_k]] = True
    return np.flatnonzero(keep)


@dataclass
class CLIPScorer:
    """Cosine similarities of matched image-text pairs under a CLIP-like model, with transformers' own classes
    (`AutoModel`, `AutoProcessor`): any checkpoint with ``get_image_features`` / ``get_text_features``.

    Args:
        model: the scoring model (in eval mode, on its device).
        processor: its processor (tokenizer and image processor).
        batch_size: pairs encoded per forward pass.
    """

    model: Any
    processor: Any
    batch_size: int = 32

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_CLIP, dtype: str | None = None,
                        device: str | None = None, trust_remote_code: bool = False, batch_size: int = 32
                        ) -> "CLIPScorer":
        """Load a CLIP-like model (safetensors weights only) and its processor from the Hub or a folder."""
        from transformers import AutoModel, AutoProcessor

        device = resolve_device(device)
        kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": trust_remote_code}
        torch_dtype = resolve_dtype(dtype, device)
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
        try:
            model = AutoModel.from_pretrained(str(name_or_path), **kwargs)
        except (OSError, ValueError) as error:
            raise InputError(f"Cannot load the scoring model {str(name_or_path)!r} ({error}). Give a CLIP-like "
                             f"checkpoint with safetensors weights, e.g. {DEFAULT_CLIP!r}.") from error
        missing = [m for m in ("get_image_features", "get_text_features") if not callable(getattr(model, m, None))]
        if missing:
            raise InputError(f"{str(name_or_path)!r} ({type(model).__name__}) is not a CLIP-like model: it has no "
                             f"{' or '.join(missing)}. Use e.g. {DEFAULT_CLIP!r}.")
        processor = AutoProcessor.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
        return cls(model.to(device).eval(), processor, batch_size)

    def pair_scores(self, images: Sequence[Any], texts: Sequence[str]) -> np.ndarray:
        """``s(images[i], texts[i])`` for every ``i``: cosine similarity in [-1, 1], shape ``(n,)``; NaN where an
        image cannot be decoded."""
        import torch

        if len(images) != len(texts):
            raise ValueError(f"Give one text per image: {len(images)} images, {len(texts)} texts.")
        scores = np.full(len(images), np.nan)
        decoded = [(i, decode_image(image)[0]) for i, image in enumerate(images)]
        usable = [(i, image) for i, image in decoded if image is not None]
        device = next(self.model.parameters()).device
        for start in range(0, len(usable), self.batch_size):
            rows = usable[start : start + self.batch_size]
            inputs = self.processor(text=[texts[i] for i, _ in rows], images=[image for _, image in rows],
                                    return_tensors="pt", padding=True, truncation=True).to(device)
            with torch.inference_mode():
                image_embeds = _embeddings(self.model.get_image_features(pixel_values=inputs["pixel_values"]))
                text_embeds = _embeddings(self.model.get_text_features(
                    input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")))
            similarities = torch.nn.functional.cosine_similarity(image_embeds.float(), text_embeds.float(), dim=-1)
            scores[[i for i, _ in rows]] = similarities.cpu().numpy()
        return scores

    def triplet_scores(self, images: Sequence[Any], captions: Sequence[str], negative_images: Sequence[Any],
                       negative_captions: Sequence[str]) -> np.ndarray:
        """The triplet score ``(s(x, y) + s(x', y')) / 2`` of every row, shape ``(n,)``."""
        return triplet_score(self.pair_scores(images, captions), self.pair_scores(negative_images, negative_captions))


def _embeddings(output: Any) -> Any:
    """The projected embedding from ``get_*_features``: a tensor (transformers 4) or an output's ``pooler_output``."""
    return getattr(output, "pooler_output", output)


def filter_tripletdata(source: str | Path, out_dir: str | Path, top_k: int | None = None,
                       threshold: float | None = None, column: str = "clip_score", **write_kwargs: Any) -> Path:
    """Write the rows of the TripletData ``source`` that :func:`select_rows` keeps to ``out_dir`` (Hub layout).

    The scores are read from ``column`` (``clip_score`` as written by ``tripletclip synthesize --clip-model``);
    images are copied as stored, not re-encoded. Returns ``out_dir``.
    """
    import datasets

    from ..hub_layout import write_tripletdata
    from ..sources import load_tripletdata
    from ..schema import IMAGE_COLUMNS

    # A card that declares dataset_info makes datasets' cache key ignore the files themselves (two folders of the same
    # name, features and sizes share one cache entry), so read the shards afresh.
    dataset = load_tripletdata(source, download_mode="force_redownload")
    if column not in dataset.column_names:
        raise ValueError(
            f"{source} has no {column!r} column to filter on (columns: {dataset.column_names}). Score it first, "
            f"e.g. with `tripletclip synthesize ... --clip-model {DEFAULT_CLIP}`."
        )
    kept = select_rows(dataset[column], top_k=top_k, threshold=threshold)
    logger.info("CLIP-score filter: kept %d of %d triplets (top_k=%s, threshold=%s)", len(kept), len(dataset),
                top_k, threshold)
    for name in IMAGE_COLUMNS:
        dataset = dataset.cast_column(name, datasets.Image(decode=False))
    features = dataset.features.copy()
    for name in IMAGE_COLUMNS:
        features[name] = datasets.Image()
    return write_tripletdata(dataset.select(kept), out_dir, features=features, **write_kwargs)
