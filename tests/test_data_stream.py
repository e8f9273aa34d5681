"""The trainer's batch stream: full batches whatever rows are corrupt, the same batches for any number of workers,
and a position that resumes to the row."""

from __future__ import annotations

import io
from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from dataset_builders.batches import TripletCollator, defer_image_decoding
from dataset_builders.batches import StreamPosition, TripletBatches, rank_sequence

from conftest import make_tiny

NUM_ROWS = 40
BATCH = 6
LONG = 12  # a caption longer than the model's text length
#: Rows made unusable, each in its own way: reason counted, row replaced by the next one of the sequence.
CORRUPT = {
    3: ("image", {"bytes": b"\x89PNG\r\n\x1a\n not really", "path": None}, "undecodable image"),
    4: ("caption", "   ", "empty caption"),
    9: ("negative_image", None, "missing negative image"),
    17: ("negative_caption", b"\xff\xfe broken utf-8", "undecodable negative caption"),
    21: ("image", {"bytes": b"", "path": None}, "undecodable image"),
    30: ("negative_image", "__truncated__", "undecodable negative image"),
}


def _jpeg(i: int, size=(96, 72)) -> bytes:
    pixels = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _rows() -> list[dict]:
    rows = [{"id": str(i), "caption": f"a photo of scene {i}", "negative_caption": f"a drawing of scene {i}",
             "image": {"bytes": _jpeg(2 * i), "path": None}, "negative_image": {"bytes": _jpeg(2 * i + 1), "path": None}}
            for i in range(NUM_ROWS)]
    rows[LONG]["caption"] = "a photo of " + "a red circle next to a blue square " * 40  # truncated, counted, used
    for index, (column, value, _) in CORRUPT.items():
        if value == "__truncated__":
            value = {"bytes": rows[index][column]["bytes"][:300], "path": None}
        rows[index][column] = value
    return rows


@pytest.fixture(scope="module")
def processor():
    return make_tiny()[1]


@pytest.fixture(scope="module")
def dataset():
    features = datasets.Features({
        "id": datasets.Value("string"), "caption": datasets.Value("binary"),
        "negative_caption": datasets.Value("binary"), "image": datasets.Image(decode=False),
        "negative_image": datasets.Image(decode=False)})
    rows = [{**r, "caption": r["caption"].encode() if isinstance(r["caption"], str) else r["caption"],
             "negative_caption": r["negative_caption"].encode() if isinstance(r["negative_caption"], str)
             else r["negative_caption"]} for r in _rows()]
    return defer_image_decoding(datasets.Dataset.from_list(rows, features=features))


def _stream(dataset, processor, **options):
    collator = TripletCollator(processor, negative_captions=True, negative_images=True, reduced_image_decoding=True,
                               normalize_images=False)
    return TripletBatches(dataset, collator, per_process_batch_size=BATCH, seed=3, **options)


def _assert_same(batch, expected):
    assert batch.keys() == expected.keys()
    for key in batch:
        torch.testing.assert_close(batch[key], expected[key], rtol=0, atol=0)


def test_batches_with_corrupt_rows_are_full_and_equal_to_batches_of_the_valid_rows(dataset, processor):
    batches = _stream(dataset, processor)
    order = rank_sequence(NUM_ROWS, 0, 3, 0, 1, BATCH)
    valid = [int(i) for i in order if int(i) not in CORRUPT]
    direct = TripletCollator(processor, negative_captions=True, negative_images=True, reduced_image_decoding=True,
                             normalize_images=False)
    rows = _rows()
    corrupt_seen = 0
    for number in range(len(valid) // BATCH):
        batch = next(batches)
        assert batch["pixel_values"].shape[0] == BATCH  # always full
        expected = direct([rows[i] for i in valid[number * BATCH:(number + 1) * BATCH]])
        _assert_same(batch, expected)
        # the position is just past the last row used: valid rows used plus the corrupt rows met before them
        last = valid[(number + 1) * BATCH - 1]
        used_through = list(order).index(last) + 1
        assert batches.position == StreamPosition(0, used_through)
        corrupt_seen = sum(int(i) in CORRUPT for i in order[:used_through])
        assert batches.stats.skipped_total == corrupt_seen
    assert corrupt_seen >= 4  # the test met most of the corrupt rows, in batches of their own
    expected_reasons = Counter(CORRUPT[int(i)][2] for i in order[:batches.position.index] if int(i) in CORRUPT)
    assert batches.stats.skipped == expected_reasons
    assert direct.skipped == Counter()  # the direct batches were built from valid rows only
    assert LONG in order[:batches.position.index]
    assert batches.collator.truncated == direct.truncated == 1  # tokenised in the stream's workers, counted here


@pytest.mark.parametrize("num_workers", [1, 2])
def test_workers_give_the_same_batches_positions_and_counts(dataset, processor, num_workers):
    reference, workers = _stream(dataset, processor), _stream(dataset, processor, num_workers=num_workers)
    for _ in range(9):  # more than one epoch: the sequence wraps around
        _assert_same(next(workers), next(reference))
        assert workers.position == reference.position
    assert workers.stats.skipped == reference.stats.skipped and workers.stats.rows == reference.stats.rows
    assert workers.collator.truncated == reference.collator.truncated >= 1
    assert reference.position.epoch == 1
    workers.close()


def test_resuming_from_a_position_continues_with_the_same_batches(dataset, processor):
    straight = _stream(dataset, processor)
    for _ in range(3):
        next(straight)
    position = straight.position
    after = [next(straight) for _ in range(4)]
    resumed = _stream(dataset, processor, num_workers=2, start=position)
    for expected in after:
        _assert_same(next(resumed), expected)
    assert resumed.position == straight.position
    resumed.close()


def test_streaming_datasets_stream_the_same_way(dataset, processor):
    iterable = dataset.to_iterable_dataset(num_shards=4)
    reference = _stream(iterable, processor, streaming=True)
    workers = _stream(iterable, processor, streaming=True, num_workers=2)
    valid = [r for r in range(NUM_ROWS) if r not in CORRUPT]  # streamed in order
    rows = _rows()
    direct = TripletCollator(processor, negative_captions=True, negative_images=True, reduced_image_decoding=True,
                             normalize_images=False)
    for number in range(3):
        batch = next(reference)
        _assert_same(batch, direct([rows[i] for i in valid[number * BATCH:(number + 1) * BATCH]]))
        _assert_same(next(workers), batch)
    used = valid[3 * BATCH - 1] + 1
    assert reference.position == workers.position == StreamPosition(0, used)
    assert reference.stats.skipped == workers.stats.skipped == Counter(
        reason for index, (_, _, reason) in CORRUPT.items() if index < used)
    workers.close()
