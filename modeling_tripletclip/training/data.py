"""Training batches from any TripletData source, identical in size on every process, resumable to the row.

The cross-process loss gathers embeddings from every process, so every process must contribute exactly the same
number of triplets each step. A corrupt row (undecodable image, empty caption, missing negative) therefore cannot
just shrink a batch: it is counted (by reason) and replaced by the next row of the same process's sequence.

Each process reads its own deterministic sequence of rows:

- map-style datasets: a seeded permutation per epoch, cut into global batches of `train_batch_size`; process
  ``r`` takes slice ``r`` of every global batch, so two processes see exactly the rows one process with the doubled
  batch would see, in the same places of the gathered batch;
- streaming datasets (Hub ids, WebDataset shards): `datasets.distributed.split_dataset_by_node`, read in order.

Worker processes read, decode, check and prepare rows (`TripletCollator.prepare`: captions decoded, images decoded
and resized to the model's input) in chunks of consecutive rows, taken round-robin, so the main process receives them
in sequence order whatever the number of workers; it counts the skipped ones and turns each full set of usable rows
into one batch (`TripletCollator.collate`: one tokenizer call, images stacked). The position of the next row is all
that a checkpoint needs to resume exactly: rows received but not yet used are simply read again after a resume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


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
