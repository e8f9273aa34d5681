"""ColorSwap as its Hub repository publishes it (``stanfordnlp/colorswap``: parquet splits ``train`` and ``test``
with ``id``, ``image_1``, ``image_2``, ``caption_1``, ``caption_2``, ``image_source``, ``caption_source``), by Hub
id and by folder; scored against an independent loop with Winoground's rule; a gated repository says how to get in."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from conftest import serve_hub_dataset
from modeling_tripletclip.evaluation import CLIPEncoder, EvaluationInputError, load_benchmark
from test_eval_benchmarks import direct_image, direct_text, draw, png_bytes

HUB_ID = "stanfordnlp/colorswap"
# (image_1 seed, image_2 seed, caption_1, caption_2, image_source); row 2 repeats an image: an exact tie.
ROWS = [
    (0, 1, "a yellow umbrella and a white dress", "a white umbrella and a yellow dress", "midjourney"),
    (2, 3, "a red car next to a blue house", "a blue car next to a red house", "dalle3"),
    (4, 4, "a green cup on a black table", "a black cup on a green table", "midjourney"),
    (5, 6, "a pink bird on an orange branch", "an orange bird on a pink branch", "sdxl"),
]
FEATURES = datasets.Features({"id": datasets.Value("int64"), "image_1": datasets.Image(), "image_2": datasets.Image(),
                              "caption_1": datasets.Value("string"), "caption_2": datasets.Value("string"),
                              "image_source": datasets.Value("string"), "caption_source": datasets.Value("string")})


def make_colorswap(folder):
    (folder / "data").mkdir(parents=True)
    for split, rows in (("train", ROWS[:1]), ("test", ROWS)):
        records = [{"id": i, "image_1": {"bytes": png_bytes(draw(a)), "path": None},
                    "image_2": {"bytes": png_bytes(draw(b)), "path": None}, "caption_1": c1, "caption_2": c2,
                    "image_source": source, "caption_source": "human"} for i, (a, b, c1, c2, source) in enumerate(rows)]
        datasets.Dataset.from_list(records, features=FEATURES).to_parquet(
            folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture
def hub(monkeypatch, tmp_path):
    return serve_hub_dataset(monkeypatch, HUB_ID, make_colorswap(tmp_path / "colorswap"))


@pytest.mark.parametrize("by", ["hub id", "folder"])
def test_colorswap_scores_follow_winoground_rule_on_the_test_split(hub, tiny_model_and_processor, by):
    model, processor = tiny_model_and_processor
    model.eval()
    result = load_benchmark("colorswap", HUB_ID if by == "hub id" else str(hub)).run(
        CLIPEncoder(model, processor, batch_size=4, progress=False))
    assert result.num_items == len(ROWS)  # the test split, not train
    text, image = [], []
    for a, b, c1, c2, _ in ROWS:
        u1, u2 = direct_image(model, processor, draw(a)), direct_image(model, processor, draw(b))
        v1, v2 = direct_text(model, processor, c1), direct_text(model, processor, c2)
        text.append(float(v1 @ u1) > float(v2 @ u1) and float(v2 @ u2) > float(v1 @ u2))
        image.append(float(v1 @ u1) > float(v1 @ u2) and float(v2 @ u2) > float(v2 @ u1))
    assert not image[2]  # the tie is wrong
    assert result.metrics["text"] == pytest.approx(np.mean(text))
    assert result.metrics["image"] == pytest.approx(np.mean(image))
    assert result.metrics["group"] == pytest.approx(np.mean([t and i for t, i in zip(text, image)]))
    assert result.metrics["midjourney/group"] == pytest.approx(np.mean([text[0] and image[0], text[2] and image[2]]))


def test_a_gated_dataset_without_access_says_how_to_get_it(monkeypatch):
    def gated(path, *args, **kwargs):
        raise datasets.exceptions.DatasetNotFoundError(
            f"Dataset '{path}' is a gated dataset on the Hub. You must be authenticated to access it.")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    with pytest.raises(EvaluationInputError, match="gated.*hf auth login"):
        load_benchmark("colorswap", HUB_ID)
