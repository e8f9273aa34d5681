"""The whole batch path, in one place: a TripletData row -> decoded and checked -> collated -> the ordered,
resumable multi-worker stream of equal batches -> the model's inputs.

    from torch.utils.data import DataLoader
    from dataset_builders.batches import TripletCollator, defer_image_decoding

    collator = TripletCollator(processor, reduced_image_decoding=True)  # as the trainer: decode less
    loader = DataLoader(defer_image_decoding(dataset), batch_size=64, collate_fn=collator)
    for batch in loader:
        loss = model(**batch, return_loss=True).loss
    print(collator.skipped)          # Counter({'undecodable image': 3, ...})

The work is split in two, so that a data-loader worker does the expensive half and the batch is built in one go:

- :meth:`TripletCollator.prepare` (one row, in a worker): `dataset_builders.rows.decode_row`: captions decoded and
  checked, images decoded, resized and cropped to the model's input size as small ``uint8`` arrays (with
  ``reduced_image_decoding``: large JPEGs decoded at a reduced scale, torch's resize kernels); or the reason the row
  is skipped;
- :meth:`TripletCollator.collate` (a list of usable rows, once per batch): one tokenizer call for every caption and
  negative caption, the images stacked and normalised in one vectorised pass (or, with ``normalize_images=False``,
  left as ``uint8`` for :meth:`TripletCollator.normalize` on the accelerator).

The trainer's stream moves the tokenizer call into the workers too (:meth:`TripletCollator.prepare_rows`: one call
per chunk of rows), so that the training process only pads and stacks; the batches are identical.

Calling the collator on rows does both. Works for map-style and streaming datasets alike (also after
`datasets.distributed.split_dataset_by_node`).

**The training stream** (:class:`TripletBatches`): batches from any TripletData source, identical in size on every
process, resumable to the row. The cross-process loss gathers embeddings from every process, so every process must
contribute exactly the same number of triplets each step. A corrupt row (undecodable image, empty caption, missing
negative) therefore cannot just shrink a batch: it is counted (by reason) and replaced by the next row of the same
process's sequence. Each process reads its own deterministic sequence of rows:

- map-style datasets: a seeded permutation per epoch, cut into global batches of `train_batch_size`; process
  ``r`` takes slice ``r`` of every global batch, so two processes see exactly the rows one process with the doubled
  batch would see, in the same places of the gathered batch;
- streaming datasets (Hub ids, WebDataset shards): `datasets.distributed.split_dataset_by_node`, read in order.

Worker processes read, decode, check and prepare rows in chunks of consecutive rows, taken round-robin, so the main
process receives them in sequence order whatever the number of workers; it counts the skipped ones and turns each
full set of usable rows into one batch. The position of the next row is all that a checkpoint needs to resume
exactly: rows received but not yet used are simply read again after a resume. :func:`model_inputs` then keeps the
inputs the objective uses, moved to the device and normalised there.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import schema
from .rows import DecodedRow, decode_row
from .utils.images import DEFAULT_MAX_PIXELS, ImageTransform

logger = logging.getLogger(__name__)
_PIXEL_KEYS = ("pixel_values", "negative_pixel_values")


def defer_image_decoding(dataset):
    """Cast the dataset's image columns to ``Image(decode=False)`` so images are decoded by the collator.

    With decoding left to datasets, a corrupt image raises while the row is read, before any collator sees it;
    deferred, the collator skips the row and counts it.
    """
    import datasets

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
            truncated, and counted in ``truncated``.
        max_pixels: images with more pixels are skipped (``image too large``) from their header, never decoded.
        reduced_image_decoding: decode and resize less for nearly the same pixels, as the trainer does by default:
            JPEGs much larger than the model's input decoded at a DCT scale, only the centre crop resized
            (`dataset_builders.utils.images.ImageTransform`, within ``REDUCED_DECODING_BOUND`` 8-bit levels). The
            default gives exactly what the processor gives.
        normalize_images: return ``pixel_values`` normalised, as the model takes them (default). ``False`` returns the
            images as ``uint8`` tensors ``(B, H, W, 3)``, a quarter of the size, for :meth:`normalize` to finish on
            the accelerator (the trainer does this: the data loader's process never converts to float).

    Returns (from a call):
        A dict of tensors: ``pixel_values`` ``(B, 3, H, W)``, ``input_ids`` and ``attention_mask`` ``(B, L)``, and,
        when negatives are used, ``negative_pixel_values`` ``(B, 3, H, W)``, ``negative_input_ids`` and
        ``negative_attention_mask`` ``(B, L)`` (one padding length for both caption sets). ``B`` is the number of
        usable rows; when no row is usable the dict is empty.

    Attributes:
        skipped: a `collections.Counter` of skipped rows by reason (`dataset_builders.rows.SKIP_REASONS`),
            cumulative over calls; a trainer logs it.
        rows_seen: rows handed to the collator so far.
        truncated: captions longer than ``max_length`` tokens so far (they were truncated, not skipped).
    """

    def __init__(
        self,
        processor,
        negative_captions: bool | None = None,
        negative_images: bool | None = None,
        max_length: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        reduced_image_decoding: bool = False,
        normalize_images: bool = True,
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
        self.max_length = max_length or self.tokenizer.model_max_length
        self.max_pixels = max_pixels
        self.transform = ImageTransform(self.image_processor, reduced=reduced_image_decoding)
        self.normalize_images = normalize_images
        self.skipped: Counter = Counter()
        self.rows_seen = 0
        self.truncated = 0

    @staticmethod
    def _identity_resize_size(image_processor) -> int | None:
        """The image side for which the processor's resize and centre crop change nothing (a square of the crop size
        equal to the resize size), when the processor is one `ImageTransform` reproduces."""
        transform = ImageTransform(image_processor)
        if transform.exact and transform.size == transform.crop_height == transform.crop_width:
            return transform.size
        return None

    # ------------------------------------------------------------------ one row (in a worker)

    def prepare(self, row: Mapping[str, Any]) -> tuple[DecodedRow | None, str | None]:
        """Decode, check and prepare one row: ``(DecodedRow, None)`` or ``(None, skip reason)``. Counts nothing:
        whoever receives the result counts skips (a worker's counters would not reach the training process)."""
        return decode_row(
            row,
            negative_captions=self._use(self.negative_captions, schema.NEGATIVE_CAPTION, [row]),
            negative_images=self._use(self.negative_images, schema.NEGATIVE_IMAGE, [row]),
            transform=self.transform,
            max_pixels=self.max_pixels,
        )

    def tokenize(self, rows: Sequence[DecodedRow]) -> None:
        """Tokenise the captions of decoded rows in one tokenizer call (a chunk of rows, in a worker), in place: the
        ids go into ``caption_ids`` / ``negative_caption_ids`` and the number of truncated captions into
        ``truncated``; `collate` then only pads. Identical to tokenising in `collate`."""
        if not rows:
            return
        texts = [r.caption for r in rows] + [r.negative_caption for r in rows if r.negative_caption is not None]
        tokens = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = tokens["input_ids"]
        encodings = getattr(tokens, "encodings", None)
        cut = [bool(e.overflowing) for e in encodings] if encodings else [len(t) > self.max_length for t in
                                                                         self.tokenizer(texts)["input_ids"]]
        negatives = iter(range(len(rows), len(texts)))
        for number, row in enumerate(rows):
            row.caption_ids, row.truncated = ids[number], int(cut[number])
            if row.negative_caption is not None:
                other = next(negatives)
                row.negative_caption_ids = ids[other]
                row.truncated += int(cut[other])

    def prepare_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[DecodedRow | None, str | None]]:
        """`prepare` for several rows, then `tokenize` the usable ones together: a worker's whole share of work."""
        prepared = [self.prepare(row) for row in rows]
        self.tokenize([decoded for decoded, _ in prepared if decoded is not None])
        return prepared

    # ------------------------------------------------------------------ a batch (once)

    def collate(self, rows: Sequence[DecodedRow]) -> dict[str, Any]:
        """Usable rows -> the batch of tensors (see the class docstring); negatives are included when the rows carry
        them."""
        if not rows:
            return {}
        with_captions = rows[0].negative_caption is not None
        with_images = rows[0].negative_image is not None
        if any((r.negative_caption is not None) != with_captions or (r.negative_image is not None) != with_images
               for r in rows):
            raise ValueError("Rows of one batch must all carry negatives or all lack them; decode them with the same "
                             "negative_captions / negative_images settings.")
        size = len(rows)
        if all(r.caption_ids is not None and (r.negative_caption_ids is not None) == with_captions for r in rows):
            input_ids, attention_mask = self._pad([r.caption_ids for r in rows] + (
                [r.negative_caption_ids for r in rows] if with_captions else []))
            self.truncated += sum(r.truncated for r in rows)
        else:
            texts = [r.caption for r in rows] + ([r.negative_caption for r in rows] if with_captions else [])
            input_ids, attention_mask = self._tokenize(texts)
        images = [r.image for r in rows] + ([r.negative_image for r in rows] if with_images else [])
        pixel_values = self.transform.stack(images)
        if self.normalize_images:
            pixel_values = self.transform.normalize(pixel_values)
        batch = {
            "pixel_values": pixel_values[:size],
            "input_ids": input_ids[:size],
            "attention_mask": attention_mask[:size],
        }
        if with_images:
            batch["negative_pixel_values"] = pixel_values[size:]
        if with_captions:
            batch["negative_input_ids"] = input_ids[size:]
            batch["negative_attention_mask"] = attention_mask[size:]
        return batch

    def normalize(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch collated with ``normalize_images=False`` (e.g. after ``.to("cuda")``) -> the model's inputs:
        ``uint8`` images become normalised ``pixel_values`` on their device; everything else is unchanged."""
        return {key: self.transform.normalize(value) if key in _PIXEL_KEYS else value for key, value in batch.items()}

    def _pad(self, ids: list[list[int]]):
        """Token ids of different lengths -> ``(input_ids, attention_mask)`` padded to the longest, as the
        tokenizer pads."""
        import torch

        padded = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="np")
        return torch.from_numpy(padded["input_ids"]), torch.from_numpy(padded["attention_mask"])

    def _tokenize(self, texts: list[str]):
        """One tokenizer call for every caption: ``(input_ids, attention_mask)``, padded to the longest; counts
        the captions that were truncated."""
        import torch

        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        encodings = getattr(tokens, "encodings", None)
        if encodings:  # a fast tokenizer keeps what truncation cut off
            self.truncated += sum(bool(encoding.overflowing) for encoding in encodings)
        else:
            self._count_truncated(texts)
        return torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["attention_mask"])

    def _count_truncated(self, texts: list[str]) -> None:
        # A caption of at most max_length - 2 characters cannot exceed max_length tokens (each token covers a
        # character or more, plus the start and end tokens), so only the longer ones are measured.
        long = [t for t in texts if len(t) > self.max_length - 2]
        if long:
            lengths = [len(ids) for ids in self.tokenizer(long, truncation=False)["input_ids"]]
            self.truncated += sum(length > self.max_length for length in lengths)

    # ------------------------------------------------------------------ both

    @staticmethod
    def _as_rows(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> list[Mapping[str, Any]]:
        if isinstance(rows, Mapping):  # a batch as a dict of columns (e.g. dataset[i:j])
            names = list(rows)
            return [dict(zip(names, values)) for values in zip(*(rows[n] for n in names))]
        return list(rows)

    @staticmethod
    def _use(setting: bool | None, column: str, rows: Sequence[Mapping[str, Any]]) -> bool:
        if setting is not None:
            return setting
        return any(column in row for row in rows)

    def __call__(self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        rows = self._as_rows(rows)
        self.rows_seen += len(rows)
        negative_captions = self._use(self.negative_captions, schema.NEGATIVE_CAPTION, rows)
        negative_images = self._use(self.negative_images, schema.NEGATIVE_IMAGE, rows)
        usable = []
        for row in rows:
            decoded, reason = decode_row(row, negative_captions=negative_captions, negative_images=negative_images,
                                         transform=self.transform, max_pixels=self.max_pixels)
            if reason is None:
                usable.append(decoded)
            else:
                self.skip(row, reason)
        return self.collate(usable)

    def skip(self, row: Mapping[str, Any] | None, reason: str) -> None:
        """Count one skipped row under ``reason``."""
        self.skipped[reason] += 1
        logger.debug("Skipping row %s: %s", (row or {}).get(schema.ID, "?"), reason)


# ====================================================================================== the training stream


@dataclass
class StreamPosition:
    """Where a process's row sequence stands: the epoch and the index of the next row within it."""

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


@dataclass
class DataStats:
    """Rows used, rows skipped (by reason) and captions truncated to the model's length, on this process."""

    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    truncated: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def rank_sequence(num_rows: int, epoch: int, seed: int, rank: int, num_processes: int, per_process: int) -> np.ndarray:
    """The row indices process ``rank`` reads in ``epoch``: slice ``rank`` of each global batch of a seeded
    permutation (the incomplete last global batch is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(num_rows)
    global_batch = per_process * num_processes
    usable = (num_rows // global_batch) * global_batch
    return order[:usable].reshape(-1, num_processes, per_process)[:, rank, :].reshape(-1)


#: Rows a worker prepares per message to the training process: a message costs about as much as preparing several
#: small images, so rows travel in chunks, their images stacked into one tensor (which travels through shared memory).
ROWS_PER_CHUNK = 32


@dataclass
class _Chunk:
    """Prepared rows of one chunk: ``entries`` are ``(epoch, index, decoded_row_or_None, skip_reason)``; when the
    prepared images are arrays of one shape, they travel stacked in ``images`` / ``negative_images`` (one tensor
    each, moved through shared memory by the data loader) and the rows get them back as views on arrival."""

    entries: list
    images: torch.Tensor | None = None
    negative_images: torch.Tensor | None = None

    @classmethod
    def pack(cls, entries: list) -> "_Chunk":
        rows = [entry[2] for entry in entries if entry[2] is not None]
        shapes = {getattr(image, "shape", None) for row in rows for image in (row.image, row.negative_image)
                  if image is not None}
        if not rows or None in shapes or len(shapes) != 1:
            return cls(entries)
        images = torch.from_numpy(np.stack([row.image for row in rows]))
        negatives = [row.negative_image for row in rows if row.negative_image is not None]
        negative_images = torch.from_numpy(np.stack(negatives)) if len(negatives) == len(rows) else None
        for row in rows:
            row.image = None
            if negative_images is not None:
                row.negative_image = None
        return cls(entries, images, negative_images)

    def unpack(self) -> list:
        if self.images is not None:
            images = self.images.numpy()
            negatives = self.negative_images.numpy() if self.negative_images is not None else None
            rows = [entry[2] for entry in self.entries if entry[2] is not None]
            for number, row in enumerate(rows):
                row.image = images[number]
                if negatives is not None:
                    row.negative_image = negatives[number]
        return self.entries


class _RowStream(IterableDataset):
    """Yields chunks of ``(epoch, index, decoded_row_or_None, skip_reason)`` in sequence order from ``start``.

    Chunk ``c`` of the sequence (``ROWS_PER_CHUNK`` consecutive rows, never across epochs) is prepared by worker
    ``c % num_workers``; a `DataLoader` collects its workers' outputs round-robin, so chunks arrive in order whatever
    the number of workers.
    """

    def __init__(self, dataset, collator, *, streaming, seed, rank, num_processes, per_process, start: StreamPosition,
                 rows_per_chunk: int = ROWS_PER_CHUNK):
        self.dataset = dataset
        self.collator = collator
        self.streaming = streaming
        self.seed, self.rank, self.num_processes, self.per_process = seed, rank, num_processes, per_process
        self.start = start
        self.rows_per_chunk = rows_per_chunk

    def _chunks(self, mine) -> Iterator[list[tuple[int, int, dict | None]]]:
        """The sequence as chunks of ``(epoch, index, row)``; ``row`` is read only for the chunks ``mine(c)``
        accepts (``None`` elsewhere: another worker prepares them)."""
        epoch, index, number = self.start.epoch, self.start.index, 0
        while True:
            if self.streaming:
                # `iter` reads every shard of this process's split, also inside a data-loader worker (iterating the
                # dataset itself there would give each worker only some of the shards).
                self.dataset.set_epoch(epoch)
                produced, read = False, 0
                for columns in self.dataset.iter(batch_size=self.rows_per_chunk):
                    names = list(columns)
                    count = len(columns[names[0]]) if names else 0
                    first, read = max(index - read, 0), read + count
                    if first >= count:  # before the start position
                        continue
                    produced = True
                    positions = range(read - count + first, read)
                    if mine(number):
                        rows = [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))][first:]
                    else:
                        rows = [None] * len(positions)
                    yield [(epoch, i, row) for i, row in zip(positions, rows)]
                    number += 1
            else:
                sequence = rank_sequence(
                    len(self.dataset), epoch, self.seed, self.rank, self.num_processes, self.per_process
                )
                if len(sequence) == 0:
                    raise ValueError(
                        f"The dataset has {len(self.dataset)} rows, fewer than one global batch of "
                        f"{self.per_process * self.num_processes}: lower --train_batch_size or use more data."
                    )
                produced = index < len(sequence)
                for first in range(index, len(sequence), self.rows_per_chunk):
                    positions = range(first, min(first + self.rows_per_chunk, len(sequence)))
                    if mine(number):
                        columns = self.dataset[[int(sequence[i]) for i in positions]]  # one read for the chunk
                        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
                    else:
                        rows = [None] * len(positions)
                    yield [(epoch, i, row) for i, row in zip(positions, rows)]
                    number += 1
            if not produced and index == 0:
                raise ValueError("This process's share of the dataset is empty: use more data or fewer processes.")
            epoch, index = epoch + 1, 0

    def __iter__(self):
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        for number, chunk in enumerate(self._chunks(lambda c: c % workers == worker_id)):
            if number % workers != worker_id:
                continue
            prepared = self.collator.prepare_rows([row for _, _, row in chunk])
            yield _Chunk.pack([(epoch, index, *result) for (epoch, index, _), result in zip(chunk, prepared)])


def _as_is(chunk):
    return chunk


class TripletBatches:
    """An endless iterator of full per-process batches, with its position and skip counts.

    ``dataset`` is a map-style `datasets.Dataset` or (``streaming=True``) an `IterableDataset` already split for
    this process. ``collator`` is a `dataset_builders.collator.TripletCollator`: its ``prepare`` runs per row in the
    workers, its ``collate`` once per batch here; skipped rows are counted in ``stats.skipped`` by reason.
    """

    def __init__(
        self,
        dataset,
        collator,
        *,
        per_process_batch_size: int,
        seed: int,
        rank: int = 0,
        num_processes: int = 1,
        streaming: bool = False,
        num_workers: int = 0,
        start: StreamPosition | None = None,
    ):
        self.position = start or StreamPosition()
        self.stats = DataStats()
        self.batch_size = per_process_batch_size
        self.collator = collator
        stream = _RowStream(
            dataset,
            collator,
            streaming=streaming,
            seed=seed,
            rank=rank,
            num_processes=num_processes,
            per_process=per_process_batch_size,
            start=self.position,
        )
        self._loader = iter(
            DataLoader(
                stream,
                batch_size=None,
                collate_fn=_as_is,
                num_workers=num_workers,
                persistent_workers=num_workers > 0,
                # Enough prepared chunks in flight per worker that a batch is ready when the step ends.
                prefetch_factor=max(2, -(-2 * per_process_batch_size // (ROWS_PER_CHUNK * num_workers)))
                if num_workers > 0 else None,
            )
        )
        self._pending: list = []  # prepared rows received and not yet used, in sequence order

    def __iter__(self):
        return self

    def close(self) -> None:
        """Stop the worker processes now (they also stop when the stream is garbage-collected)."""
        loader, self._loader = self._loader, None
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def __next__(self) -> dict[str, torch.Tensor]:
        rows = []
        while len(rows) < self.batch_size:
            if not self._pending:
                self._pending = next(self._loader).unpack()[::-1]
            epoch, index, row, reason = self._pending.pop()
            self.position = StreamPosition(epoch, index + 1)
            if row is None:
                self.stats.skipped[reason] += 1
                continue
            rows.append(row)
        self.stats.rows += len(rows)
        return self.collator.collate(rows)


def model_inputs(batch: dict, collator: TripletCollator, device, *, negative_captions: bool,
                 negative_images: bool) -> dict:
    """Only the inputs an objective uses (NegCLIP never encodes negative images, CLIP no negatives at all), on the
    device, images normalised there (the stream carries them as ``uint8``)."""
    keys = ["input_ids", "attention_mask", "pixel_values"]
    if negative_captions:
        keys += ["negative_input_ids", "negative_attention_mask"]
    if negative_images:
        keys += ["negative_pixel_values"]
    return collator.normalize({key: batch[key].to(device, non_blocking=True) for key in keys if key in batch})
