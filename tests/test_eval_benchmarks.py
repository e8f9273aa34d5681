"""The benchmarks end to end with tiny random CLIP-like models: data formats, encode-once, scores against a direct
per-item computation, real SugarCrepe annotations and real photos, bad input, and the model-card results."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from modeling_tripletclip.evaluation import (
    CLIPEncoder,
    EvaluationInputError,
    eval_results_for_card,
    evaluate_model,
    evaluate_model_detailed,
    load_benchmark,
    load_model_and_processor,
)
from modeling_tripletclip.evaluation.tasks import BenchmarkOptions
from modeling_tripletclip.encoding import image_source_from_file
from dataset_builders.synthesis.rules import NEGATIVE_KINDS as SUGARCREPE_SUBSETS

PHOTO_CAPTIONS = {  # the real photos in tests/data/images and captions a person would write
    "astronaut.png": ["a portrait of an astronaut with the American flag", "a photo of an astronaut"],
    "chelsea.png": ["a close-up photo of a tabby cat", "a photo of a cat"],
    "coffee.png": ["a cup of coffee on a saucer", "a photo of coffee"],
    "horse.png": ["a black-and-white silhouette of a horse", "a photo of a horse"],
    "rocket.jpg": ["a rocket lifting off from a launch pad", "a photo of a rocket"],
}
PHOTO_CLASSES = {"astronaut.png": "astronaut", "chelsea.png": "cat", "coffee.png": "coffee",
                 "horse.png": "horse", "rocket.jpg": "rocket"}


# -- fixture builders (also used by test_eval_cli.py) ---------------------------------------------------------------


def draw(seed: int, size: int = 32) -> Image.Image:
    """A small picture of coloured shapes, different for each seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    pen = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(4, size // 2, 2)
        pen.rectangle([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_hub_dataset(folder: Path, rows: list[dict], features: datasets.Features, split: str = "test") -> Path:
    """A dataset in the Hub layout (parquet shard under data/), as `load_dataset(folder)` reads it."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


SMALL_SUGARCREPE = {
    # Non-contiguous keys; images shared across subsets; one tie (identical captions) that must count as wrong.
    "replace_obj": {"0": ("a.jpg", "a red square", "a red circle"), "2": ("b.jpg", "a blue ball", "a blue cube"),
                    "5": ("a.jpg", "two red squares", "two green squares")},
    "swap_att": {"1": ("c.jpg", "a red square and a blue circle", "a blue square and a red circle"),
                 "3": ("b.jpg", "the same words", "the same words")},
    "add_obj": {"0": ("d.jpg", "a cat", "a cat and a dog"), "1": ("a.jpg", "a red square", "a red square and a star")},
}


def make_small_sugarcrepe(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    for subset, items in SMALL_SUGARCREPE.items():
        content = {k: {"filename": f, "caption": c, "negative_caption": n} for k, (f, c, n) in items.items()}
        (folder / f"{subset}.json").write_text(json.dumps(content))
    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]):
        draw(i).save(folder / "images" / name)
    return folder


WINOGROUND_ROWS = [  # (seed_0, seed_1, caption_0, caption_1, tag)
    (0, 1, "a red square left of a blue circle", "a blue circle left of a red square", "swap_obj"),
    (2, 3, "a green star", "a yellow star", "replace_att"),
    (4, 4, "two cubes", "three cubes", "replace_att"),  # the same image twice: image score is a tie
    (5, 6, "a dog on a mat", "a dog on a mat", "swap_obj"),  # the same caption twice: text score is a tie
    (7, 8, "a big tree", "a small tree", "add_att"),
    (0, 2, "a red square left of a blue circle", "a green star", "replace_obj"),  # repeats images and a caption
]


def make_winoground(folder: Path, broken_row: int | None = None) -> Path:
    rows = []
    for i, (a, b, c0, c1, tag) in enumerate(WINOGROUND_ROWS):
        image_1 = {"bytes": b"this is not an image", "path": "broken.png"} if i == broken_row else png_bytes(draw(b))
        rows.append({"id": str(i), "image_0": png_bytes(draw(a)), "image_1": image_1, "caption_0": c0,
                     "caption_1": c1, "tag": tag})
    features = datasets.Features({"id": datasets.Value("string"), "image_0": datasets.Image(),
                                  "image_1": datasets.Image(), "caption_0": datasets.Value("string"),
                                  "caption_1": datasets.Value("string"), "tag": datasets.Value("string")})
    return write_hub_dataset(folder, rows, features)


COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star", "cube", "ball")


def triplet_captions(i: int) -> tuple[str, str]:
    """A caption and its negative caption (the colours swapped), in words the tiny tokenizer knows."""
    a, b = COLOURS[i % 6], COLOURS[(i + 1 + i // 6) % 6]
    x, y = SHAPES[i % 6], SHAPES[(i + 2) % 6]
    return f"a {a} {x} to the left of a {b} {y}", f"a {b} {x} to the left of a {a} {y}"


def make_tripletdata(folder: Path, n: int = 8) -> Path:
    from dataset_builders.schema import triplet_features

    rows = [{"image": png_bytes(draw(10 + i)), "caption": triplet_captions(i)[0],
             "negative_image": png_bytes(draw(100 + i)), "negative_caption": triplet_captions(i)[1],
             "negative_kind": "replace_att" if i % 2 else "swap_att"} for i in range(n)]
    return write_hub_dataset(folder, rows, triplet_features(["negative_kind"]), split="train")


def make_photo_retrieval(folder: Path, test_data: Path) -> Path:
    rows = [{"image": str(test_data / "images" / name), "captions": captions}
            for name, captions in PHOTO_CAPTIONS.items()]
    features = datasets.Features({"image": datasets.Image(), "captions": datasets.List(datasets.Value("string"))})
    return write_hub_dataset(folder, rows, features)


def make_photo_classes(folder: Path, test_data: Path) -> Path:
    for name, label in PHOTO_CLASSES.items():
        (folder / label).mkdir(parents=True)
        shutil.copy(test_data / "images" / name, folder / label / name)
    return folder


# -- an independent, per-item computation of similarities (no batching, no cache) -----------------------------------


def direct_image(model, processor, image: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        pixels = processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        e = model.get_image_features(pixel_values=pixels).pooler_output[0]
    return e / e.norm()


def direct_text(model, processor, text: str) -> torch.Tensor:
    with torch.no_grad():
        tokens = processor(text=[text], return_tensors="pt", truncation=True,
                           max_length=model.config.text_config.max_position_embeddings)
        output = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        e = output.pooler_output[0]
    return e / e.norm()


def count_tower_calls(model):
    """Forward hooks counting the rows each tower encodes; returns (counts, handles)."""
    counts = {"image": 0, "text": 0, "image_calls": 0}

    def on_vision(module, args, kwargs, output):
        counts["image"] += kwargs["pixel_values"].shape[0] if "pixel_values" in kwargs else args[0].shape[0]
        counts["image_calls"] += 1

    def on_text(module, args, kwargs, output):
        counts["text"] += kwargs["input_ids"].shape[0] if "input_ids" in kwargs else args[0].shape[0]

    handles = [model.vision_model.register_forward_hook(on_vision, with_kwargs=True),
               model.text_model.register_forward_hook(on_text, with_kwargs=True)]
    return counts, handles


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine thread hand-offs make their
    millisecond operations many times slower; run each test on one thread and restore the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    return model.eval(), processor


@pytest.fixture(scope="module")
def micro_clip(tiny_model_and_processor):
    """A plain `transformers.CLIPModel` far smaller than the tiny preset (one 8-wide layer per tower), for the
    test that pushes all 7,511 real SugarCrepe items through: the numbers do not matter there, the bookkeeping does."""
    from transformers import CLIPConfig, CLIPModel

    _, processor = tiny_model_and_processor
    tokenizer = processor.tokenizer
    tower = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        projection_dim=8,
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": tokenizer.model_max_length,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={**tower, "image_size": 32, "patch_size": 16},
    )
    torch.manual_seed(0)
    return CLIPModel(config).eval(), processor


# -- SugarCrepe -----------------------------------------------------------------------------------------------------


def test_sugarcrepe_scores_match_direct_computation(tmp_path, tiny):
    model, processor = tiny
    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    result = load_benchmark("sugarcrepe", folder).run(CLIPEncoder(model, processor, batch_size=3, progress=False))
    images = {name: direct_image(model, processor, Image.open(folder / "images" / name))
              for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")}
    for subset, items in SMALL_SUGARCREPE.items():
        pos = [float(images[f] @ direct_text(model, processor, c)) for f, c, _ in items.values()]
        neg = [float(images[f] @ direct_text(model, processor, n)) for f, _, n in items.values()]
        np.testing.assert_allclose(result.details[f"{subset}/positive_scores"], pos, atol=1e-5)
        np.testing.assert_allclose(result.details[f"{subset}/negative_scores"], neg, atol=1e-5)
        expected = sum(p > n for p, n in zip(result.details[f"{subset}/positive_scores"],
                                             result.details[f"{subset}/negative_scores"])) / len(items)
        assert result.metrics[subset] == expected
    # The item whose caption equals its negative caption is an exact tie: wrong, so swap_att is at most 1/2.
    assert result.details["swap_att/positive_scores"][1] == result.details["swap_att/negative_scores"][1]
    assert result.metrics["swap_att"] <= 0.5
    assert "overall" not in result.metrics  # only three of the seven subsets
    assert result.num_items == result.num_scored == 7


def test_real_sugarcrepe_annotations_all_items_each_image_encoded_once(tmp_path, test_data, micro_clip):
    model, processor = micro_clip
    annotations = test_data / "sugarcrepe"
    names, captions, per_subset = set(), set(), {}
    for subset in SUGARCREPE_SUBSETS:
        content = json.loads((annotations / f"{subset}.json").read_text())
        per_subset[subset] = len(content)
        for item in content.values():
            names.add(item["filename"])
            captions.update((item["caption"], item["negative_caption"]))
    assert sum(per_subset.values()) == 7511 and len(names) == 1560 and per_subset["swap_obj"] == 245
    images = tmp_path / "val2017"  # stand-in images named as the COCO files the JSON names
    images.mkdir()
    for i, name in enumerate(sorted(names)):
        Image.new("RGB", (24, 24), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(images / name)

    counts, handles = count_tower_calls(model)
    try:
        encoder = CLIPEncoder(model, processor, batch_size=256, progress=False)
        benchmark = load_benchmark("sugarcrepe", annotations, BenchmarkOptions(images=images))
        result = benchmark.run(encoder)
    finally:
        for handle in handles:
            handle.remove()

    assert {s: len(items) for s, items in benchmark.items.items()} == per_subset
    assert "108" not in {item.key for item in benchmark.items["swap_obj"]}  # the key missing upstream
    assert result.num_items == result.num_scored == 7511
    # Each of the 1,560 distinct images went through the vision tower exactly once (every item got a score, so each
    # image was encoded at least once; the total shows none twice); the same for the 11,844 distinct captions.
    assert counts["image"] == encoder.num_images_encoded == 1560
    assert counts["image_calls"] == 7  # ceil(1560 / 256) batches
    assert counts["text"] == encoder.num_texts_encoded == len(captions)
    assert all(np.isfinite(result.details[f"{s}/positive_scores"]).all() for s in SUGARCREPE_SUBSETS)
    m = result.metrics
    assert set(m) == set(SUGARCREPE_SUBSETS) | {"replace", "swap", "add", "overall", "overall_weighted",
                                                "overall_of_kinds"}
    assert m["overall"] == pytest.approx(np.mean([m[s] for s in SUGARCREPE_SUBSETS]))
    sizes = {s: len(result.details[f"{s}/positive_scores"]) for s in SUGARCREPE_SUBSETS}
    assert m["overall_weighted"] == pytest.approx(sum(m[s] * sizes[s] for s in SUGARCREPE_SUBSETS) / sum(sizes.values()))
    assert m["swap"] == pytest.approx((m["swap_obj"] + m["swap_att"]) / 2)
    for subset in SUGARCREPE_SUBSETS:
        pos, neg = result.details[f"{subset}/positive_scores"], result.details[f"{subset}/negative_scores"]
        assert m[subset] == pytest.approx(float(np.mean(pos > neg)))
    # A second run with the same encoder encodes nothing again.
    again = benchmark.run(encoder)
    assert encoder.num_images_encoded == 1560 and again.metrics == m


def test_sugarcrepe_missing_image_is_named(tmp_path):
    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    (folder / "images" / "c.jpg").unlink()
    with pytest.raises(EvaluationInputError, match=r"c\.jpg \(named by swap_att\.json\['1'\]\)"):
        load_benchmark("sugarcrepe", folder)
    with pytest.raises(EvaluationInputError, match="--images"):
        load_benchmark("sugarcrepe", tmp_path / "sugarcrepe", BenchmarkOptions(images=tmp_path / "nowhere"))


def test_sugarcrepe_undecodable_image_is_skipped_and_counted(tmp_path, tiny):
    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    (folder / "images" / "b.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    result = load_benchmark("sugarcrepe", folder).run(CLIPEncoder(*tiny, progress=False))
    assert result.num_items == 7 and result.num_scored == 5  # b.jpg is used by two items
    assert list(result.skipped_images) == [str(folder / "images" / "b.jpg")]
    assert "scored 5 of 7 items" in result.summary("sugarcrepe") and "b.jpg" in result.summary("sugarcrepe")


# -- Winoground-style and TripletData -------------------------------------------------------------------------------


def test_winoground_matches_direct_computation_with_ties_and_tags(tmp_path, tiny):
    model, processor = tiny
    folder = make_winoground(tmp_path / "winoground")
    counts, handles = count_tower_calls(model)
    try:
        result = load_benchmark("winoground", folder).run(CLIPEncoder(model, processor, batch_size=4, progress=False))
    finally:
        for handle in handles:
            handle.remove()
    assert counts["image"] == 9  # seeds 0..8: repeated images are encoded once
    expected_scores = []
    for a, b, c0, c1, _ in WINOGROUND_ROWS:
        u = [direct_image(model, processor, draw(a)), direct_image(model, processor, draw(b))]
        v = [direct_text(model, processor, c0), direct_text(model, processor, c1)]
        expected_scores.append([[float(v[c] @ u[i]) for i in range(2)] for c in range(2)])
    np.testing.assert_allclose(result.details["scores"], expected_scores, atol=1e-5)
    s = result.details["scores"]
    text = [(x[0][0] > x[1][0]) and (x[1][1] > x[0][1]) for x in s]
    image = [(x[0][0] > x[0][1]) and (x[1][1] > x[1][0]) for x in s]
    assert not image[2] and not text[3]  # exact ties are wrong
    assert result.metrics["text"] == sum(text) / 6 and result.metrics["image"] == sum(image) / 6
    assert result.metrics["group"] == sum(t and i for t, i in zip(text, image)) / 6
    assert result.metrics["replace_att/image"] == (image[1] + image[2]) / 2
    tags = {k.split("/")[0] for k in result.metrics if "/" in k}
    assert tags == {"swap_obj", "replace_att", "add_att", "replace_obj"}


def test_winoground_undecodable_image_is_reported_by_name(tmp_path, tiny):
    folder = make_winoground(tmp_path / "winoground", broken_row=4)
    result = load_benchmark("winoground", folder).run(CLIPEncoder(*tiny, progress=False))
    assert result.num_items == 6 and result.num_scored == 5
    [(name, reason)] = result.skipped_images.items()
    assert name == "row 4, column image_1 (broken.png)" and "cannot identify image" in reason


def test_winoground_streaming_gives_the_same_scores(tmp_path, tiny):
    folder = make_winoground(tmp_path / "winoground")
    plain = load_benchmark("winoground", folder).run(CLIPEncoder(*tiny, progress=False))
    streamed = load_benchmark("winoground", folder, BenchmarkOptions(streaming=True)).run(
        CLIPEncoder(*tiny, progress=False)
    )
    assert streamed.metrics == plain.metrics and streamed.num_scored == 6
    first_three = load_benchmark("winoground", folder, BenchmarkOptions(streaming=True, max_items=3)).run(
        CLIPEncoder(*tiny, progress=False)
    )
    assert first_three.num_items == 3
    np.testing.assert_allclose(first_three.details["scores"], plain.details["scores"][:3], atol=1e-6)


def test_missing_columns_are_named_with_the_expected_ones(tmp_path):
    folder = make_winoground(tmp_path / "winoground")
    with pytest.raises(EvaluationInputError) as error:
        load_benchmark("tripletdata", folder)
    message = str(error.value)
    assert "lacks the column(s) image, negative_image, caption, negative_caption" in message
    assert "needs image, negative_image, caption, negative_caption" in message and "image_0" in message
    with pytest.raises(EvaluationInputError, match="lacks the column.*captions"):
        load_benchmark("retrieval", folder)
    with pytest.raises(EvaluationInputError, match="Unknown benchmark 'imagenet'.*sugarcrepe, winoground"):
        load_benchmark("imagenet", folder)


def test_tripletdata_and_similarity_against_direct_computation(tmp_path, tiny):
    model, processor = tiny
    folder = make_tripletdata(tmp_path / "triplets")
    results = evaluate_model_detailed(model, processor, {"tripletdata": folder, "similarity": folder}, progress=False)
    image_sims, text_sims, correct = [], [], []
    for i in range(8):
        u, u_neg = direct_image(model, processor, draw(10 + i)), direct_image(model, processor, draw(100 + i))
        v, v_neg = (direct_text(model, processor, c) for c in triplet_captions(i))
        image_sims.append(float(u @ u_neg))
        text_sims.append(float(v @ v_neg))
        s = [[float(v @ u), float(v @ u_neg)], [float(v_neg @ u), float(v_neg @ u_neg)]]
        correct.append((s[0][0] > s[1][0] and s[1][1] > s[0][1], s[0][0] > s[0][1] and s[1][1] > s[1][0]))
    similarity = results["similarity"]
    np.testing.assert_allclose(similarity.details["image_similarity"], image_sims, atol=1e-5)
    np.testing.assert_allclose(similarity.details["text_similarity"], text_sims, atol=1e-5)
    assert max(text_sims) < 0.9999 and max(image_sims) < 0.9999  # the pairs really differ
    assert similarity.metrics["image_similarity_mean"] == pytest.approx(np.mean(image_sims), abs=1e-5)
    assert similarity.metrics["text_similarity_median"] == pytest.approx(np.median(text_sims), abs=1e-5)
    triplet = results["tripletdata"].metrics
    assert triplet["text"] == sum(t for t, _ in correct) / 8
    assert triplet["image"] == sum(i for _, i in correct) / 8
    assert triplet["group"] == sum(t and i for t, i in correct) / 8
    assert {"swap_att/text", "replace_att/group"} <= set(triplet)  # per negative_kind


# -- Retrieval and zero-shot on real photos -------------------------------------------------------------------------


def loop_recall(image_embeddings, caption_embeddings, owners, k):
    """Straightforward recall@k: sort candidates, ties resolved against the correct ones."""
    scores = (image_embeddings @ caption_embeddings.T).tolist()
    hits_image = 0
    for t, owner in enumerate(owners):
        order = sorted(range(len(scores)), key=lambda i: (-scores[i][t], i == owner))
        hits_image += owner in order[:k]
    hits_text = 0
    for i in range(len(scores)):
        order = sorted(range(len(owners)), key=lambda t: (-scores[i][t], owners[t] == i))
        hits_text += any(owners[t] == i for t in order[:k])
    return hits_image / len(owners), hits_text / len(scores)


def test_retrieval_on_real_photos_dataset_and_karpathy_json_agree(tmp_path, test_data, tiny):
    model, processor = tiny
    dataset = make_photo_retrieval(tmp_path / "retrieval", test_data)
    karpathy = tmp_path / "dataset_flickr_mini.json"
    karpathy.write_text(json.dumps({"images": [
        {"filename": name, "split": "test", "sentences": [{"raw": c} for c in captions]}
        for name, captions in PHOTO_CAPTIONS.items()
    ] + [{"filename": "not-in-test-split.jpg", "split": "train", "sentences": [{"raw": "ignored"}]}]}))

    detailed = evaluate_model_detailed(model, processor, {"retrieval": dataset}, progress=False)["retrieval"]
    from_dataset = detailed.metrics
    from_json = evaluate_model(model, processor, {"retrieval": karpathy}, images=test_data / "images",
                               progress=False)["retrieval"]
    assert from_dataset == pytest.approx(from_json, abs=1e-12)

    images = torch.stack([direct_image(model, processor, Image.open(test_data / "images" / n))
                          for n in PHOTO_CAPTIONS])
    captions = torch.stack([direct_text(model, processor, c) for cs in PHOTO_CAPTIONS.values() for c in cs])
    owners = [i for i, cs in enumerate(PHOTO_CAPTIONS.values()) for _ in cs]
    for k in (1, 5, 10):
        image_recall, text_recall = loop_recall(images, captions, owners, k)
        if k < len(PHOTO_CAPTIONS):
            assert from_dataset[f"image_retrieval_recall@{k}"] == pytest.approx(image_recall)
        if k < len(owners):
            assert from_dataset[f"text_retrieval_recall@{k}"] == pytest.approx(text_recall)
    # Five images: every one is in the top 5 and the top 10, so those recalls say nothing. Not applicable, not 100%.
    assert "image_retrieval_recall@5" not in from_dataset and "image_retrieval_recall@10" not in from_dataset
    assert any("image_retrieval_recall@5,10 not applicable (only 5 images" in note for note in detailed.notes)


def test_karpathy_json_missing_image_and_split(tmp_path, test_data):
    karpathy = tmp_path / "karpathy.json"
    karpathy.write_text(json.dumps({"images": [
        {"filename": "chelsea.png", "split": "test", "sentences": [{"raw": "a cat"}]},
        {"filename": "COCO_val2014_000000000042.jpg", "filepath": "val2014", "split": "test",
         "sentences": [{"raw": "a dog"}]},
    ]}))
    with pytest.raises(EvaluationInputError, match="COCO_val2014_000000000042.jpg"):
        load_benchmark("retrieval", karpathy, BenchmarkOptions(images=test_data / "images"))
    with pytest.raises(EvaluationInputError, match=r"no images in split 'val'; its splits are \['test'\]"):
        load_benchmark("retrieval", karpathy, BenchmarkOptions(images=test_data / "images", split="val"))


def test_zero_shot_on_real_photos_class_folders(tmp_path, test_data, tiny):
    model, processor = tiny
    folder = make_photo_classes(tmp_path / "classes", test_data)
    templates = ["a photo of a {}.", "a blurry photo of the {}."]
    benchmark = load_benchmark("zeroshot", folder, BenchmarkOptions(templates=templates))
    assert benchmark.class_names == sorted(PHOTO_CLASSES.values())
    result = benchmark.run(CLIPEncoder(model, processor, progress=False))
    assert result.num_scored == 5

    classifier = []
    for name in benchmark.class_names:
        e = torch.stack([direct_text(model, processor, t.format(name)) for t in templates]).mean(0)
        classifier.append(e / e.norm())
    classifier = torch.stack(classifier)
    hits, per_class = 0, {}
    for file, label in PHOTO_CLASSES.items():
        logits = (100 * direct_image(model, processor, Image.open(test_data / "images" / file)) @ classifier.T)
        target = benchmark.class_names.index(label)
        correct = all(logits[target] > logits[c] for c in range(len(classifier)) if c != target)
        hits += correct
        per_class[label] = float(correct)
    assert result.metrics["top1"] == hits / 5
    assert result.metrics["mean_per_class_recall"] == pytest.approx(np.mean(list(per_class.values())))
    # Five classes: the true class is always in the top 5. Not applicable, not 100%.
    assert "top5" not in result.metrics and any("top5 not applicable (5 classes" in n for n in result.notes)


def test_zero_shot_default_templates_and_hub_dataset(tmp_path, test_data, tiny):
    model, processor = tiny
    names = sorted(set(PHOTO_CLASSES.values()))
    rows = [{"img": str(test_data / "images" / f), "fine_label": names.index(c)} for f, c in PHOTO_CLASSES.items()]
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=names)})
    folder = write_hub_dataset(tmp_path / "cls", rows, features, split="validation")
    counts, handles = count_tower_calls(model)
    try:
        metrics = evaluate_model(model, processor, {"zeroshot": folder}, progress=False)["zeroshot"]
    finally:
        for handle in handles:
            handle.remove()
    assert counts["text"] == 5 * 80  # OpenAI's 80 ImageNet templates per class
    assert set(metrics) == {"top1", "mean_per_class_recall"}  # top5 of five classes does not apply
    bad = write_hub_dataset(tmp_path / "nolabels", [{"img": r["img"]} for r in rows],
                            datasets.Features({"img": datasets.Image()}))
    with pytest.raises(EvaluationInputError, match="ClassLabel"):
        load_benchmark("zeroshot", bad)


# -- Models ---------------------------------------------------------------------------------------------------------


def test_load_tripletclip_and_clip_checkpoints(tiny_checkpoint, tiny_clip_checkpoint, tiny, test_data):
    from transformers import CLIPModel

    from modeling_tripletclip import TripletCLIPModel

    triplet, triplet_processor = load_model_and_processor(tiny_checkpoint, device="cpu")
    clip, clip_processor = load_model_and_processor(tiny_clip_checkpoint, device="cpu")
    assert type(triplet) is TripletCLIPModel and type(clip) is CLIPModel and not triplet.training
    photo = Image.open(test_data / "images" / "coffee.png")
    encoder = CLIPEncoder(triplet, triplet_processor, progress=False)
    embedding, ok = encoder.encode_images([image_source_from_file(test_data / "images" / "coffee.png")])
    assert ok.all()
    torch.testing.assert_close(embedding[0], direct_image(tiny[0], tiny[1], photo), atol=1e-5, rtol=0)
    text = CLIPEncoder(clip, clip_processor, progress=False).encode_texts(["a cup of coffee"])
    torch.testing.assert_close(text[0], direct_text(clip, clip_processor, "a cup of coffee"))


def test_not_a_clip_model_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(EvaluationInputError, match="'bert' checkpoint, not a CLIP-like model"):
        load_model_and_processor(tmp_path / "bert")
    with pytest.raises(EvaluationInputError, match="Cannot load a model configuration"):
        load_model_and_processor(tmp_path / "empty-folder")
    with pytest.raises(EvaluationInputError, match="not a CLIP-like model"):
        CLIPEncoder(torch.nn.Linear(2, 2), processor=None)


def test_evaluate_model_restores_training_mode(tmp_path, tiny):
    model, processor = tiny
    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    model.train()
    try:
        results = evaluate_model(model, processor, {"sugarcrepe": folder}, progress=False)
        assert model.training
    finally:
        model.eval()
    assert set(results) == {"sugarcrepe"} and set(results["sugarcrepe"]) >= {"replace_obj", "swap_att", "add_obj"}
    assert all(0.0 <= v <= 1.0 for v in results["sugarcrepe"].values())


# -- Model cards ----------------------------------------------------------------------------------------------------


def test_eval_results_round_trip_through_a_model_card():
    from huggingface_hub import ModelCard, ModelCardData

    report = {
        "outputs/tripletclip": {
            "sugarcrepe": {**{s: 0.5 for s in SUGARCREPE_SUBSETS}, "replace": 0.5, "swap": 0.5, "add": 0.5,
                           "overall": 0.6349},
            "winoground": {"text": 0.25, "image": 0.125, "group": 0.0625},
            "retrieval": {"image_retrieval_recall@5": 0.285, "text_retrieval_recall@5": 0.33},
            "zeroshot": {"top1": 0.2331, "top5": 0.45, "mean_per_class_recall": 0.22},
            "similarity": {"image_similarity_mean": 0.8},
        },
        "openai/clip": {"sugarcrepe": {"overall": 0.7306}},
    }
    results = eval_results_for_card(report, "outputs/tripletclip",
                                    dataset_names={"sugarcrepe": "SugarCrepe (built-in world)"})
    assert len(results) == 11 + 3 + 2 + 3  # similarity is descriptive and not on the card
    overall = next(r for r in results if r.metric_name.endswith("overall (mean of the seven subsets)"))
    assert overall.metric_value == 0.6349 and overall.dataset_name == "SugarCrepe (built-in world)"
    assert {r.metric_type for r in results} == {"accuracy", "recall"}
    with pytest.raises(ValueError, match="several models"):
        eval_results_for_card(report)
    single = eval_results_for_card(report["openai/clip"], as_percent=True)
    assert [r.metric_value for r in single] == [73.06]

    card = ModelCard.from_template(ModelCardData(model_name="tripletclip", eval_results=results, license="apache-2.0"))
    reloaded = ModelCard(str(card)).data.eval_results
    assert [(r.dataset_name, r.metric_name, r.metric_value) for r in reloaded] == [
        (r.dataset_name, r.metric_name, r.metric_value) for r in results
    ]


def make_original_winoground(folder: Path) -> Path:
    """Winoground's original release: data/examples.jsonl (image names without extension) + data/images.zip."""
    import zipfile

    (folder / "data").mkdir(parents=True)
    lines = []
    with zipfile.ZipFile(folder / "data" / "images.zip", "w") as archive:
        for i, (a, b, c0, c1, tag) in enumerate(WINOGROUND_ROWS):
            for j, seed in enumerate((a, b)):
                archive.writestr(f"images/ex_{i}_img_{j}.png", png_bytes(draw(seed)))
            lines.append(json.dumps({"id": i, "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1",
                                     "caption_0": c0, "caption_1": c1, "tag": tag, "secondary_tag": "",
                                     "num_main_preds": 1, "collapsed_tag": "Object"}))
    (folder / "data" / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_winoground_original_release_layout_scores_as_the_hub_dataset(tmp_path, tiny):
    model, processor = tiny
    hub = load_benchmark("winoground", make_winoground(tmp_path / "hub")).run(
        CLIPEncoder(model, processor, batch_size=4, progress=False))
    original = load_benchmark("winoground", make_original_winoground(tmp_path / "original")).run(
        CLIPEncoder(model, processor, batch_size=4, progress=False))
    assert original.metrics == hub.metrics and original.num_items == len(WINOGROUND_ROWS)
    np.testing.assert_array_equal(original.details["scores"], hub.details["scores"])
