"""Turn TripletData rows into model inputs through a CLIP processor, skipping and counting unusable rows.

    from torch.utils.data import DataLoader
    from dataset_builders.collator import TripletCollator, defer_image_decoding

    collator = TripletCollator(processor)
    loader = DataLoader(defer_image_decoding(dataset), batch_size=64, collate_fn=collator)
    for batch in loader:
        loss = model(**batch, return_loss=True).loss
    print(collator.skipped)          # Counter({'undecodable image': 3, ...})

Works for map-style and streaming datasets alike (also after `datasets.distributed.split_dataset_by_node`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from . import schema
from .validation import (
    EMPTY_CAPTION,
    EMPTY_NEGATIVE_CAPTION,
    UNDECODABLE_IMAGE,
    UNDECODABLE_NEGATIVE_IMAGE,
    MISSING_IMAGE,
    MISSING_NEGATIVE_IMAGE,
    decode_image,
    decode_text,
    is_missing,
)

logger = logging.getLogger(__name__)


def defer_image_decoding(dataset: datasets.Dataset | datasets.IterableDataset):
    """Cast the dataset's image columns to ``Image(decode=False)`` so images are decoded by the collator.

    With decoding left to datasets, a corrupt image raises while the row is read, before any collator sees it;
    deferred, the collator skips the row and counts it.
    """
    features = dataset.features
    if features is None:
        return dataset
    for name in (*schema.IMAGE_COLUMNS, schema.IMAGE_0, schema.IMAGE_1):
        feature = features.get(name)
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset


class TripletCollator:
    """A ``collate_fn``: a list of TripletData rows -> a batch of tensors for `TripletCLIPModel`.

    Args:
        processor: a `transformers.CLIPProcessor` (its tokenizer and image processor are used).
        negative_captions: ``True`` requires a negative caption per row (rows without one are skipped),
            ``False`` ignores them, ``None`` (default) uses them when the rows have the column.
        negative_images: the same for negative images.
        max_length: token length limit (default: the tokenizer's ``model_max_length``); longer captions are
            truncated.

    Returns (from a call):
        A dict of tensors: ``pixel_values`` ``(B, 3, H, W)``, ``input_ids`` and ``attention_mask`` ``(B, L)``, and,
        when negatives are used, ``negative_pixel_values`` ``(B, 3, H, W)``, ``negative_input_ids`` and
        ``negative_attention_mask`` ``(B, L)`` (one padding length for both caption sets). ``B`` is the number of
        usable rows; when no row is usable the dict is empty.

    Attributes:
        skipped: a `collections.Counter` of skipped rows by reason (see `dataset_builders.validation`), cumulative
            over calls; a trainer logs it.
        rows_seen: rows handed to the collator so far.
    """

    def __init__(
        self,
        processor,
        negative_captions: bool | None = None,
        negative_images: bool | None = None,
        max_length: int | None = None,
    ):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", None)
        self.image_processor = getattr(processor, "image_processor", None)
        if self.tokenizer is None or self.image_processor is None:
            raise TypeError(
                f"TripletCollator needs a processor with a tokenizer and an image processor (a CLIPProcessor), "
                f"got {type(processor).__name__}. Load one with AutoProcessor.from_pretrained(<checkpoint>)."
            )
        self.negative_captions = negative_captions
        self.negative_images = negative_images
        self.max_length = max_length
        self.skipped: Counter = Counter()
        self.rows_seen = 0
        self._identity_size = self._identity_resize_size(self.image_processor)
        self._lookup: np.ndarray | None = None

    @staticmethod
    def _identity_resize_size(image_processor) -> int | None:
        """The image side for which the processor's resize and centre crop change nothing, when there is one.

        For a CLIP image processor (resize the shortest edge to S, centre-crop S x S, rescale, normalise), an RGB
        S x S image only needs ``(x * rescale_factor - mean) / std``; the collator then computes that directly, on
        the whole batch at once through a 256-entry table per channel, instead of going image by image through PIL
        and numpy (the same values, up to float rounding; checked in the tests). Any other processor or image size goes through the processor.
        """
        size, crop = getattr(image_processor, "size", None), getattr(image_processor, "crop_size", None)
        try:
            side = size["shortest_edge"] if size is not None else None
            crop_h, crop_w = (crop["height"], crop["width"]) if crop is not None else (None, None)
            flags = (image_processor.do_resize, image_processor.do_center_crop, image_processor.do_rescale,
                     image_processor.do_normalize)
            mean, std = image_processor.image_mean, image_processor.image_std
        except (AttributeError, KeyError, TypeError):
            return None
        if type(image_processor).__name__ not in ("CLIPImageProcessor", "CLIPImageProcessorPil", "CLIPImageProcessorFast"):
            return None
        if not all(flags) or not side or side != crop_h or side != crop_w or len(mean) != 3 or len(std) != 3:
            return None
        return int(side)

    def _pixel_values(self, images: list):
        side = self._identity_size
        if side is not None and all(image.size == (side, side) and image.mode == "RGB" for image in images):
            import torch

            if self._lookup is None:  # per channel: uint8 value -> normalised float
                processor = self.image_processor
                values = np.arange(256, dtype=np.float32) * np.float32(processor.rescale_factor)
                self._lookup = np.stack([(values - np.float32(m)) / np.float32(s)
                                         for m, s in zip(processor.image_mean, processor.image_std)])
            array = np.stack([np.asarray(image) for image in images])  # (N, S, S, 3) uint8
            pixels = np.empty((len(images), 3, side, side), dtype=np.float32)
            for channel in range(3):
                np.take(self._lookup[channel], array[..., channel], out=pixels[:, channel])
            return torch.from_numpy(pixels)
        return self.image_processor(images, return_tensors="pt")["pixel_values"]

    @staticmethod
    def _as_rows(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> list[Mapping[str, Any]]:
        if isinstance(rows, Mapping):  # a batch as a dict of columns (e.g. dataset[i:j])
            names = list(rows)
            return [dict(zip(names, values)) for values in zip(*(rows[n] for n in names))]
        return list(rows)

    def _use(self, setting: bool | None, column: str, rows: list[Mapping[str, Any]]) -> bool:
        if setting is not None:
            return setting
        return any(column in row for row in rows)

    def __call__(self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        rows = self._as_rows(rows)
        self.rows_seen += len(rows)
        use_negative_captions = self._use(self.negative_captions, schema.NEGATIVE_CAPTION, rows)
        use_negative_images = self._use(self.negative_images, schema.NEGATIVE_IMAGE, rows)

        captions, negative_captions, images, negative_images = [], [], [], []
        for row in rows:
            caption = decode_text(row.get(schema.CAPTION))
            if caption is None or not caption.strip():
                self._skip(row, EMPTY_CAPTION)
                continue
            negative_caption = None
            if use_negative_captions:
                negative_caption = decode_text(row.get(schema.NEGATIVE_CAPTION))
                if negative_caption is None or not negative_caption.strip():
                    self._skip(row, EMPTY_NEGATIVE_CAPTION)
                    continue
            value = row.get(schema.IMAGE)
            image = decode_image(value)
            if image is None:
                self._skip(row, MISSING_IMAGE if is_missing(value) else UNDECODABLE_IMAGE)
                continue
            negative_image = None
            if use_negative_images:
                value = row.get(schema.NEGATIVE_IMAGE)
                negative_image = decode_image(value)
                if negative_image is None:
                    self._skip(row, MISSING_NEGATIVE_IMAGE if is_missing(value) else UNDECODABLE_NEGATIVE_IMAGE)
                    continue
            captions.append(caption)
            images.append(image)
            if use_negative_captions:
                negative_captions.append(negative_caption)
            if use_negative_images:
                negative_images.append(negative_image)

        if not captions:
            return {}
        size = len(captions)
        pixel_values = self._pixel_values(images + negative_images)
        tokens = self.tokenizer(
            captions + negative_captions,
            padding=True,
            truncation=True,
            max_length=self.max_length or self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        batch = {
            "pixel_values": pixel_values[:size],
            "input_ids": tokens["input_ids"][:size],
            "attention_mask": tokens["attention_mask"][:size],
        }
        if use_negative_images:
            batch["negative_pixel_values"] = pixel_values[size:]
        if use_negative_captions:
            batch["negative_input_ids"] = tokens["input_ids"][size:]
            batch["negative_attention_mask"] = tokens["attention_mask"][size:]
        return batch

    def _skip(self, row: Mapping[str, Any], reason: str) -> None:
        self.skipped[reason] += 1
        logger.debug("Skipping row %s: %s", row.get(schema.ID, "?"), reason)
