"""TripletCollator: rows -> model inputs, skip counts, map-style and streaming, 2 ranks into TripletCLIPModel."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets.distributed import split_dataset_by_node
from dataset_builders import load_tripletdata, write_tripletdata
from dataset_builders.batches import TripletCollator, defer_image_decoding
from dataset_builders.world import generate_world

from conftest import make_tiny


@pytest.fixture(scope="module")
def model_and_processor():
    model, processor = make_tiny("tripletclip")
    return model, processor


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("batches") / "world"
    generate_world(out, num_train=48, seed=5, num_test=4, sugarcrepe_per_kind=1, num_winoground=7,
                   num_retrieval=2, rows_per_shard=12, progress=False)
    return out


def _png(colour, size=20):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(i, **changes):
    row = {"image": {"bytes": _png((10 * i, 0, 0)), "path": None}, "caption": f"a red square {i}",
           "negative_image": {"bytes": _png((0, 10 * i, 0)), "path": None}, "negative_caption": f"a green square {i}",
           "id": str(i)}
    row.update(changes)
    return row


def test_batch_matches_the_processor_applied_directly(world, model_and_processor):
    _, processor = model_and_processor
    dataset = load_tripletdata(world / "train")
    rows = [dataset[i] for i in range(6)]
    batch = TripletCollator(processor)(rows)
    assert set(batch) == {"pixel_values", "input_ids", "attention_mask", "negative_pixel_values",
                          "negative_input_ids", "negative_attention_mask"}
    expected_images = processor.image_processor([r["image"] for r in rows], return_tensors="pt")["pixel_values"]
    expected_negatives = processor.image_processor([r["negative_image"] for r in rows],
                                                   return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(batch["pixel_values"], expected_images, rtol=0, atol=0)
    torch.testing.assert_close(batch["negative_pixel_values"], expected_negatives, rtol=0, atol=0)
    for i, row in enumerate(rows):
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        negative_ids = batch["negative_input_ids"][i][batch["negative_attention_mask"][i].bool()].tolist()
        limit = processor.tokenizer.model_max_length
        assert ids == processor.tokenizer(row["caption"], truncation=True, max_length=limit)["input_ids"]
        assert negative_ids == processor.tokenizer(row["negative_caption"], truncation=True,
                                                   max_length=limit)["input_ids"]
    assert batch["input_ids"].shape == batch["negative_input_ids"].shape  # one padding length for both


def test_images_already_at_the_model_size_take_the_batched_path_with_the_same_values(world, model_and_processor):
    from modeling_tripletclip.presets import build_processor

    processor = build_processor(model_and_processor[1].tokenizer, 64)  # the world's images are 64 px
    rows = [load_tripletdata(world / "train")[i] for i in range(5)]
    collator = TripletCollator(processor)
    assert collator._identity_resize_size(processor.image_processor) == 64
    batch = collator(rows)
    expected = processor.image_processor([r["image"] for r in rows] + [r["negative_image"] for r in rows],
                                         return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.cat([batch["pixel_values"], batch["negative_pixel_values"]]), expected,
                               rtol=0, atol=1e-6)
    odd = collator([{**rows[0], "image": rows[0]["image"].resize((50, 70))}])  # other sizes: the processor itself
    expected = processor.image_processor([rows[0]["image"].resize((50, 70))], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(odd["pixel_values"], expected, rtol=0, atol=0)


def test_unusable_rows_are_skipped_and_counted(model_and_processor):
    _, processor = model_and_processor
    collator = TripletCollator(processor)
    truncated = _png((1, 2, 3))[:30]
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noise, "PNG")
    lazy_truncated = Image.open(io.BytesIO(noise.getvalue()[:2000]))  # header fine, pixel data cut short
    rows = [
        _row(0),
        _row(1, image={"bytes": b"not an image", "path": None}),
        _row(2, caption="  "),
        _row(3, negative_image=None),
        _row(4, negative_caption=None),
        _row(5, negative_image={"bytes": truncated, "path": None}),
        _row(6, image=lazy_truncated),
        _row(7),
    ]
    batch = collator(rows)
    assert batch["pixel_values"].shape[0] == 2
    assert collator.skipped == {"undecodable image": 2, "empty caption": 1, "missing negative image": 1,
                                "empty negative caption": 1, "undecodable negative image": 1}
    assert collator.rows_seen == 8
    assert collator([_row(8, caption=None), _row(9, image=None)]) == {}
    assert collator.skipped["empty caption"] == 2 and collator.skipped["missing image"] == 1


def test_negatives_are_used_when_present_and_required_when_asked(model_and_processor):
    _, processor = model_and_processor
    pairs = [{"image": _row(i)["image"], "caption": _row(i)["caption"]} for i in range(3)]
    batch = TripletCollator(processor)(pairs)
    assert set(batch) == {"pixel_values", "input_ids", "attention_mask"}
    strict = TripletCollator(processor, negative_images=True, negative_captions=True)
    assert strict(pairs) == {} and strict.skipped == {"empty negative caption": 3}
    captions_only = TripletCollator(processor, negative_images=False)([_row(i) for i in range(2)])
    assert "negative_pixel_values" not in captions_only and captions_only["negative_input_ids"].shape[0] == 2
    with pytest.raises(TypeError, match="CLIPProcessor"):
        TripletCollator(processor.tokenizer)


def test_map_style_dataloader_with_deferred_decoding_counts_a_corrupt_image(tmp_path, model_and_processor):
    model, processor = model_and_processor
    rows = [_row(i) for i in range(7)]
    rows[2]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n broken", "path": None}
    write_tripletdata(rows, tmp_path / "data", progress=False, card=False)
    dataset = defer_image_decoding(load_tripletdata(tmp_path / "data"))
    collator = TripletCollator(processor)
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collator))
    assert [b["pixel_values"].shape[0] for b in batches] == [3, 3]
    assert collator.skipped == {"undecodable image": 1}
    output = model(**batches[0], return_loss=True)
    assert torch.isfinite(output.loss)


def test_streaming_split_across_two_ranks_feeds_the_model(world, model_and_processor):
    model, processor = model_and_processor
    stream = defer_image_decoding(load_tripletdata(world / "train", streaming=True))
    assert stream.n_shards == 4
    seen = []
    for rank in range(2):
        shard = split_dataset_by_node(stream, rank=rank, world_size=2)
        ids = [row["id"] for row in shard]
        assert len(ids) == 24
        seen.append(set(ids))
        collator = TripletCollator(processor)
        loader = DataLoader(shard, batch_size=8, collate_fn=collator)
        batch = next(iter(loader))
        assert batch["pixel_values"].shape == (8, 3, 32, 32) and batch["negative_pixel_values"].shape[0] == 8
        model.zero_grad()
        output = model(**batch, return_loss=True)
        assert torch.isfinite(output.loss)
        output.loss.backward()
        assert model.logit_scale.grad is not None and torch.isfinite(model.logit_scale.grad)
        assert sum(collator.skipped.values()) == 0
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 48


def test_collator_reads_official_shards(tmp_path, model_and_processor):
    from dataset_builders.released_shards import read_official_shards

    from test_data_webdataset import make_official_shards

    _, processor = model_and_processor
    shards, good = make_official_shards(tmp_path / "shards")
    collator = TripletCollator(processor)
    batches = list(DataLoader(read_official_shards(shards), batch_size=5, collate_fn=collator))
    assert sum(b["pixel_values"].shape[0] for b in batches if b) == len(good)
    assert collator.skipped == {"undecodable image": 1, "missing negative image": 1, "empty caption": 1}
    first = batches[0]["pixel_values"][0].numpy()
    assert np.isfinite(first).all()
