"""Official WebDataset shards: streaming reader, skip counts, resumable converter, GeneratorBasedBuilder."""

import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from dataset_builders import load_tripletdata
from dataset_builders.builder import TripletDataBuilder
from dataset_builders.released_shards import convert_official_shards, iter_valid_triplets, read_official_shards

REPO = Path(__file__).resolve().parents[1]


def _jpeg(seed, size=24):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_official_shards(folder, num_shards=2, per_shard=6, bad=True):
    """Tar shards in the official layout, written with the `webdataset` package (independent of our reader).

    With ``bad``, shard 0 holds one corrupt image (sample 1), one sample without ``.neg_image`` (sample 3) and one
    with an empty caption (sample 4). Returns the shard paths and the good samples by id.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths, good = [], {}
    for s in range(num_shards):
        path = folder / f"shard-{s}.tar"
        with wds.TarWriter(str(path), encoder=False) as sink:
            for i in range(per_shard):
                key = f"{i:06d}"
                sample = {
                    "__key__": key,
                    "image": _jpeg(100 * s + i),
                    "neg_image": _jpeg(100 * s + i + 5000),
                    "caption": f"a photo number {s}-{i}".encode(),
                    "neg_caption": f"a drawing number {s}-{i}".encode(),
                }
                if bad and s == 0 and i == 1:
                    sample["image"] = b"\xff\xd8\xff this is not a jpeg"
                elif bad and s == 0 and i == 3:
                    del sample["neg_image"]
                elif bad and s == 0 and i == 4:
                    sample["caption"] = b"   "
                else:
                    good[f"shard-{s}/{key}"] = sample
                sink.write(sample)
        paths.append(path)
    return paths, good


def _assert_row_matches(row, sample):
    assert row["caption"] == sample["caption"].decode() and row["negative_caption"] == sample["neg_caption"].decode()
    for column, field in (("image", "image"), ("negative_image", "neg_image")):
        value = row[column]
        if isinstance(value, dict):
            assert value["bytes"] == sample[field]  # the original encoding travels untouched
        else:
            expected = Image.open(io.BytesIO(sample[field])).convert("RGB")
            np.testing.assert_array_equal(np.asarray(value.convert("RGB")), np.asarray(expected))


def test_reader_streams_maps_to_schema_and_counts_bad_samples(tmp_path):
    shards, good = make_official_shards(tmp_path / "shards")
    stream = read_official_shards(shards)
    assert list(stream.features) == ["image", "caption", "negative_image", "negative_caption", "id"]
    assert stream.n_shards == 2
    skipped = Counter()
    rows = list(iter_valid_triplets(stream, skipped))
    assert skipped == {"undecodable image": 1, "missing negative image": 1, "empty caption": 1}
    assert [row["id"] for row in rows] == list(good)
    for row in rows:
        _assert_row_matches(row, good[row["id"]])


def test_reader_refuses_missing_shards_before_reading(tmp_path):
    with pytest.raises(FileNotFoundError, match="shard-9.tar"):
        read_official_shards([tmp_path / "shard-9.tar"])
    with pytest.raises(ValueError, match="No shards given"):
        read_official_shards([])


def test_converter_writes_the_hub_layout_and_a_rerun_changes_nothing(tmp_path):
    shards, good = make_official_shards(tmp_path / "shards")
    out = tmp_path / "converted"
    report = convert_official_shards(shards, out, progress=False)
    assert report.rows == len(good) and report.skipped == {"undecodable image": 1, "missing negative image": 1,
                                                          "empty caption": 1}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00002.parquet",
                                                                "train-00001-of-00002.parquet"]
    dataset = load_tripletdata(out)
    assert dataset["id"] == list(good)
    for row in dataset:
        _assert_row_matches(row, good[row["id"]])
    card = (out / "README.md").read_text()
    assert "1 (empty caption)" in card and (out / "sample_grid.png").is_file()

    before = {p.name: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    again = convert_official_shards(shards, out, progress=False)
    assert again.converted_shards == [] and len(again.reused_shards) == 2 and again.rows == report.rows
    assert {p.name: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == before

    with pytest.raises(FileExistsError, match="other shards.*--overwrite"):
        convert_official_shards(shards[:1], out, progress=False)
    redone = convert_official_shards(shards[:1], out, overwrite=True, progress=False)
    assert redone.rows == 3 and load_tripletdata(out).num_rows == 3


_CONVERT = "import sys; from dataset_builders.released_shards import convert_official_shards as c; c(sys.argv[2:], sys.argv[1])"


def test_a_killed_conversion_resumes_without_duplicates_or_holes(tmp_path):
    shards, good = make_official_shards(tmp_path / "shards", num_shards=6, per_shard=150)
    out = tmp_path / "converted"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", _CONVERT, str(out), *map(str, shards)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = out / ".conversion"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(progress.glob("0*.json"))) < 2:
        time.sleep(0.02)
    time.sleep(0.05)  # now inside the third shard, half-written
    child.send_signal(signal.SIGKILL)
    child.wait()
    done_before = len(list(progress.glob("0*.json")))
    assert 2 <= done_before < 6, "the conversion finished before it could be interrupted"

    report = convert_official_shards(shards, out, progress=False)
    assert len(report.reused_shards) == done_before and len(report.converted_shards) == 6 - done_before
    dataset = load_tripletdata(out)
    assert dataset["id"] == list(good)  # every good sample exactly once, in order
    for row in dataset.select(range(0, len(dataset), 7)):
        _assert_row_matches(row, good[row["id"]])
    assert not [p for p in (out / "data").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_generator_based_builder_prepares_and_streams(tmp_path):
    shards, good = make_official_shards(tmp_path / "shards")
    files = {"train": [str(p) for p in shards]}
    builder = TripletDataBuilder(data_files=files, cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="train")
    assert dataset["id"] == list(good)
    assert builder.skipped == {"undecodable image": 1, "missing negative image": 1, "empty caption": 1}
    for row in dataset:
        _assert_row_matches(row, good[row["id"]])

    streaming = TripletDataBuilder(data_files=files, cache_dir=str(tmp_path / "cache2"))
    stream = streaming.as_streaming_dataset(split="train")
    assert [row["id"] for row in stream] == list(good)
    assert not (tmp_path / "cache2").exists() or not list((tmp_path / "cache2").rglob("*.arrow"))
