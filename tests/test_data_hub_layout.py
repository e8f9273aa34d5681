"""TripletData schema and the Hub layout: write parquet shards + card, read back with datasets, exact pixels."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import datasets
from dataset_builders import schema
from dataset_builders.synthesis.rules import NEGATIVE_KINDS
from dataset_builders.hub_layout import (
    NotTripletDataError,
    list_shards,
    write_dataset,
    write_parquet_shard,
    write_tripletdata,
)
from dataset_builders.sources import load_hub_dataset, load_tripletdata
from huggingface_hub import DatasetCard


def _rows(n, seed=0, size=12):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "image": Image.fromarray(rng.integers(0, 256, (size, size + 1, 3), dtype=np.uint8)),
                "caption": f"a red circle number {i}",
                "negative_image": Image.fromarray(rng.integers(0, 256, (size, size + 1, 3), dtype=np.uint8)),
                "negative_caption": f"a blue circle number {i}",
                "id": f"row-{i}",
                "negative_kind": NEGATIVE_KINDS[i % len(NEGATIVE_KINDS)],
            }
        )
    return rows


def _pixels(image):
    return np.asarray(image.convert("RGB"))


def test_triplet_features_declares_images_and_strings():
    features = schema.triplet_features(["id", "clip_score"])
    assert list(features) == ["image", "caption", "negative_image", "negative_caption", "id", "clip_score"]
    assert isinstance(features["image"], datasets.Image) and isinstance(features["negative_image"], datasets.Image)
    assert features["caption"] == datasets.Value("string") and features["clip_score"] == datasets.Value("float32")
    custom = schema.triplet_features({"source": datasets.Value("string")})
    assert custom["source"] == datasets.Value("string")
    with pytest.raises(ValueError, match="Unknown metadata column 'source'.*mapping"):
        schema.triplet_features(["source"])
    with pytest.raises(ValueError, match="required"):
        schema.triplet_features({"caption": datasets.Value("string")})


@pytest.mark.parametrize("streaming", [False, True])
def test_written_folder_loads_with_schema_features_and_exact_pixels(tmp_path, streaming):
    rows = _rows(7)
    write_tripletdata(rows, tmp_path, rows_per_shard=3, progress=False)

    shards = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert shards == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    expected = schema.triplet_features(["id", "negative_kind"])

    dataset = datasets.load_dataset(str(tmp_path), split="train", streaming=streaming)
    assert dataset.features == expected
    loaded = list(dataset)
    assert len(loaded) == 7
    for row, original in zip(loaded, rows):
        assert row["caption"] == original["caption"] and row["negative_caption"] == original["negative_caption"]
        assert row["id"] == original["id"] and row["negative_kind"] == original["negative_kind"]
        np.testing.assert_array_equal(_pixels(row["image"]), _pixels(original["image"]))
        np.testing.assert_array_equal(_pixels(row["negative_image"]), _pixels(original["negative_image"]))

    # The package's own loader returns the same thing.
    ours = load_tripletdata(tmp_path, streaming=streaming)
    assert ours.features == expected
    assert [r["id"] for r in ours] == [r["id"] for r in rows]


def test_card_yaml_declares_configs_features_splits_and_sample_grid(tmp_path):
    write_tripletdata(_rows(5), tmp_path, progress=False)
    write_tripletdata(_rows(2, seed=1), tmp_path, split="test", progress=False)
    card = DatasetCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["configs"] == [
        {"config_name": "default", "data_files": [{"split": "test", "path": "data/test-*"},
                                                  {"split": "train", "path": "data/train-*"}]}
    ]
    assert {s["name"]: s["num_examples"] for s in data["dataset_info"]["splits"]} == {"train": 5, "test": 2}
    assert [f["name"] for f in data["dataset_info"]["features"]][:4] == list(schema.REQUIRED_COLUMNS)
    assert data["license"] == "apache-2.0"
    assert "![Sample rows](sample_grid.png)" in card.text
    grid = Image.open(tmp_path / "sample_grid.png")
    assert grid.width > 2 * 128 and grid.height > 5 * 128  # two image cells per row, five rows of train
    both = datasets.load_dataset(str(tmp_path))
    assert both.num_rows == {"train": 5, "test": 2}


def test_rewriting_a_split_replaces_its_shards_and_keeps_other_splits(tmp_path):
    write_tripletdata(_rows(6), tmp_path, rows_per_shard=2, progress=False)
    write_tripletdata(_rows(3, seed=3), tmp_path, split="test", progress=False)
    write_tripletdata(iter(_rows(4, seed=5)), tmp_path, rows_per_shard=4, progress=False)  # a generator, no len
    shards = list_shards(tmp_path)
    assert [p.name for p in shards["train"]] == ["train-00000-of-00001.parquet"]
    assert len(shards["test"]) == 1
    assert load_tripletdata(tmp_path).num_rows == 4
    assert load_tripletdata(tmp_path, split="test").num_rows == 3


def test_failed_write_leaves_no_shard_a_reader_would_accept(tmp_path):
    def crashing_rows():
        yield from _rows(5)
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError, match="generator died"):
        write_tripletdata(crashing_rows(), tmp_path, rows_per_shard=2, progress=False)
    assert list_shards(tmp_path) == {}
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []

    # A single shard: the previous complete file survives a failed rewrite untouched.
    path = tmp_path / "shard.parquet"
    features = schema.triplet_features(["id", "negative_kind"])
    write_parquet_shard(_rows(3), path, features)
    before = path.read_bytes()
    bad = _rows(2)
    bad[1].pop("negative_caption")
    with pytest.raises(ValueError, match="negative_caption"):
        write_parquet_shard(bad, path, features)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["shard.parquet"]
    assert pq.read_table(path).num_rows == 3
    assert datasets.Features.from_arrow_schema(pq.read_schema(path)) == features


def test_load_rejects_folders_that_are_not_tripletdata(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotTripletDataError, match="holds no parquet shards.*tripletclip data world"):
        load_tripletdata(empty)

    pairs = tmp_path / "pairs"
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
    rows = [{"image": r["image"], "caption": r["caption"]} for r in _rows(3)]
    write_dataset(rows, pairs, features, progress=False)
    with pytest.raises(NotTripletDataError, match=r"lacks the column\(s\) \['negative_image', 'negative_caption'\].*synthesize"):
        load_tripletdata(pairs)
    assert load_hub_dataset(pairs, ["image", "caption"]).num_rows == 3  # the same folder is fine as image-caption data

    broken = tmp_path / "broken"
    write_tripletdata(_rows(2), broken, progress=False)
    card = broken / "README.md"
    card.write_text(card.read_text().replace("configs:\n", "configs: [\n", 1))
    with pytest.raises(NotTripletDataError, match="(?s)broken YAML header.*write_dataset_card"):
        load_tripletdata(broken)


def test_rows_with_undeclared_columns_are_refused(tmp_path):
    rows = _rows(2)
    rows[0]["colour"] = "red"
    with pytest.raises(ValueError, match=r"\['colour'\] are not part of the TripletData schema"):
        write_tripletdata(rows, tmp_path, progress=False)


def test_two_folders_with_equal_names_and_sizes_never_share_a_cache(tmp_path):
    """datasets keys a local folder's Arrow cache on the card metadata and the folder name only; two different
    datasets of equal size in folders of the same name must still each load their own rows."""
    from PIL import Image as PILImage

    from dataset_builders.hub_layout import write_tripletdata
    from dataset_builders.sources import load_tripletdata

    def rows(red):
        for i in range(3):
            yield {"image": PILImage.new("RGB", (8, 8), (red, 0, 0)), "caption": f"a square of red {red:03d} {i}",
                   "negative_image": PILImage.new("RGB", (8, 8), (0, 0, 0)), "negative_caption": f"no square {i}"}

    write_tripletdata(rows(200), tmp_path / "one" / "data", progress=False)
    first = load_tripletdata(tmp_path / "one" / "data")
    write_tripletdata(rows(201), tmp_path / "two" / "data", progress=False)
    second = load_tripletdata(tmp_path / "two" / "data")
    assert first[0]["caption"] == "a square of red 200 0"
    assert second[0]["caption"] == "a square of red 201 0"
    # rewriting a folder drops its cache: the new rows are read
    write_tripletdata(rows(202), tmp_path / "one" / "data", progress=False)
    assert load_tripletdata(tmp_path / "one" / "data")[0]["caption"] == "a square of red 202 0"
