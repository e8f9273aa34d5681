"""VALSE as its repository publishes it (``data/<instrument>.json``: ``{id: {"image_file", "caption", "foil",
"mturk": {...}, "dataset", ...}}``, images from the source datasets), scored against an independent loop that follows
``lxmert_valse_eval.py``: only samples with ``mturk["caption"] >= 2``, caption strictly ahead of the foil."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from modeling_tripletclip.evaluation.tasks import BenchmarkOptions
from modeling_tripletclip.evaluation.tasks.valse import INSTRUMENTS
from test_eval_benchmarks import direct_image, direct_text, draw


def make_valse(root, instruments=INSTRUMENTS):
    (root / "data").mkdir(parents=True)
    for k, name in enumerate(instruments):
        folder = root / "images" / ("visual7w" if k % 2 else "coco")
        folder.mkdir(parents=True, exist_ok=True)
        items = {}
        for j in range(3):
            image_file = f"v7w_{k}{j}.jpg" if k % 2 else f"COCO_val2014_{k:06d}{j}.jpg"
            draw(10 * k + j, size=40).save(folder / image_file, format="JPEG", quality=95)
            caption = f"there are {j + 1} red cups on the table"
            foil = caption if j == 2 else f"there are {j + 2} red cups on the table"  # j == 2: an exact tie
            items[f"{name}_{j}"] = {"dataset": "visual7w", "image_file": image_file, "caption": caption, "foil": foil,
                                    "mturk": {"caption": 3 if j else 1, "foil": 0, "other": 0}}  # j == 0: invalid
        (root / "data" / f"{name}.json").write_text(json.dumps(items))
    return root


def official(model, processor, root, name):
    items = json.loads((root / "data" / f"{name}.json").read_text())
    correct = []
    for item in items.values():
        if item["mturk"]["caption"] >= 2:
            path = next((root / "images").rglob(item["image_file"]))
            u = direct_image(model, processor, Image.open(path))
            correct.append(float(u @ direct_text(model, processor, item["caption"]))
                           > float(u @ direct_text(model, processor, item["foil"])))
    return np.mean(correct)


def test_valse_valid_samples_pairwise_accuracy(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    root = make_valse(tmp_path / "VALSE")
    result = load_benchmark("valse", root / "data", BenchmarkOptions(images=root / "images")).run(
        CLIPEncoder(model, processor, batch_size=8, progress=False))
    expected = {name: official(model, processor, root, name) for name in INSTRUMENTS}
    for name in INSTRUMENTS:
        assert result.metrics[name] == pytest.approx(expected[name]), name
    assert result.metrics["average"] == pytest.approx(np.mean(list(expected.values())))
    assert result.num_items == 2 * len(INSTRUMENTS)  # the invalid sample of each instrument is left out


def test_valse_with_some_instruments_reports_a_partial_average(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    root = make_valse(tmp_path / "VALSE", instruments=INSTRUMENTS[:3])
    result = load_benchmark("valse", root).run(CLIPEncoder(model.eval(), processor, progress=False))
    assert "average" not in result.metrics and "partial_average" in result.metrics
