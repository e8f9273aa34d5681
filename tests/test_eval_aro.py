"""ARO's VG-Relation and VG-Attribution as the official code downloads them (``visual_genome_relation.json``,
``visual_genome_attribution.json`` and ``images/``), scored against an independent loop that follows
``dataset_zoo/aro_datasets.py`` and the macro averages of ARO's notebook (symmetric relations left out, attribute
pairs with fewer than 25 items left out, a tie picking the false caption)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from modeling_tripletclip.evaluation.tasks.aro import SYMMETRIC_RELATIONS
from test_eval_benchmarks import direct_image, direct_text, draw

RELATIONS = ["on", "behind", "adjusting", "on", "behind", "on"]  # "adjusting" is one of the symmetric ones
COLOURS = ["red", "blue", "green", "white"]


def make_aro(root):
    (root / "images").mkdir(parents=True)
    for k in range(4):
        draw(k, size=96).save(root / "images" / f"{2300000 + k}.jpg", format="JPEG", quality=95)
    relation = [{"image_id": str(k), "image_path": f"{2300000 + k % 4}.jpg", "bbox_x": 4 * (k % 3), "bbox_y": 8,
                 "bbox_w": 60, "bbox_h": 50 + k, "relation_name": rel,
                 "true_caption": f"the cup is {rel} the table", "false_caption": f"the table is {rel} the cup"}
                for k, rel in enumerate(RELATIONS)]
    # Item 5 has the same true and false caption: an exact tie, which picks the false caption.
    relation[5]["false_caption"] = relation[5]["true_caption"]
    attribution = []
    for k in range(33):
        a, b = ("red", "blue") if k < 27 else ("green", "white")  # 27 items: kept; 6 items: below 25, left out
        attribution.append({"image_id": str(k), "image_path": f"{2300000 + k % 4}.jpg", "bbox_x": k % 7,
                            "bbox_y": k % 5, "bbox_w": 40 + k % 9, "bbox_h": 44, "attributes": [a, b],
                            "true_caption": f"the {a} cup and the {b} plate",
                            "false_caption": f"the {b} cup and the {a} plate"})
    (root / "visual_genome_relation.json").write_text(json.dumps(relation))
    (root / "visual_genome_attribution.json").write_text(json.dumps(attribution))
    return root, relation, attribution


def official(model, processor, root, items):
    correct = []
    for item in items:
        image = Image.open(root / "images" / item["image_path"]).convert("RGB")
        image = image.crop((item["bbox_x"], item["bbox_y"], item["bbox_x"] + item["bbox_w"],
                            item["bbox_y"] + item["bbox_h"]))
        u = direct_image(model, processor, image)
        scores = [float(u @ direct_text(model, processor, item["false_caption"])),
                  float(u @ direct_text(model, processor, item["true_caption"]))]
        correct.append(np.argmax(scores) == 1)
    return np.array(correct)


def test_aro_follows_the_official_code_and_notebook(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    root, relation, attribution = make_aro(tmp_path / "aro")
    result = load_benchmark("aro", root).run(CLIPEncoder(model, processor, batch_size=8, progress=False))
    assert "adjusting" in SYMMETRIC_RELATIONS and "on" not in SYMMETRIC_RELATIONS and len(SYMMETRIC_RELATIONS) == 157

    rel_correct = official(model, processor, root, relation)
    assert not rel_correct[5]  # the tie
    names = np.array(RELATIONS)
    per_relation = {r: rel_correct[names == r].mean() for r in set(RELATIONS)}
    for r, accuracy in per_relation.items():
        assert result.metrics[f"vg_relation/{r}"] == pytest.approx(accuracy)
    assert result.metrics["vg_relation/macro_accuracy"] == pytest.approx(
        np.mean([per_relation["on"], per_relation["behind"]]))

    att_correct = official(model, processor, root, attribution)
    assert result.metrics["vg_attribution/red_blue"] == pytest.approx(att_correct[:27].mean())
    assert "vg_attribution/green_white" not in result.metrics
    assert result.metrics["vg_attribution/macro_accuracy"] == pytest.approx(att_correct[:27].mean())
    assert result.num_items == result.num_scored == len(relation) + len(attribution)
