"""SugarCrepe++ as its repository publishes it (``data/<subset>.json`` lists of ``id``, ``filename``, ``caption``,
``caption2``, ``negative_caption``, plus COCO 2017 images named like ``000000331352.jpg``), by download folder and by
Hub id (only `snapshot_download`'s network edge replaced); scored against an independent loop that follows
SugarCrepe++'s ``VLMs/test_Variants_CLIP.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeling_tripletclip.evaluation import CLIPEncoder, EvaluationInputError, load_benchmark
from test_eval_benchmarks import direct_image, direct_text, draw

SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
# Per subset: (image seed, caption, caption2, negative caption). swap_att's second item has caption2 == caption: its
# TOT comparison s(P1, P2) against s(P2, N) ... is exact, and its ITT needs both positives strictly ahead.
ITEMS = {
    "replace_att": [(0, "a red cup on a table", "on a table stands a cup that is red", "a blue cup on a table"),
                    (1, "a small dog", "a dog that is small", "a large dog")],
    "replace_obj": [(2, "a cat on a sofa", "on the sofa lies a cat", "a dog on a sofa")],
    "replace_rel": [(0, "a cup on a table", "a table with a cup on it", "a cup under a table")],
    "swap_att": [(3, "a white cat and a black dog", "a dog that is black and a cat that is white",
                  "a black cat and a white dog"),
                 (4, "a tall man and a short woman", "a tall man and a short woman", "a short man and a tall woman")],
    "swap_obj": [(5, "a horse behind a fence", "a fence in front of a horse", "a fence behind a horse")],
}


def coco_name(seed: int) -> str:
    return f"{331352 + seed:012d}.jpg"


def make_sugarcrepe_pp(root):
    (root / "data").mkdir(parents=True)
    (root / "images").mkdir()
    for subset in SUBSETS:
        rows = [{"id": i, "filename": coco_name(seed), "caption": c, "caption2": c2, "negative_caption": n}
                for i, (seed, c, c2, n) in enumerate(ITEMS[subset])]
        (root / "data" / f"{subset}.json").write_text(json.dumps(rows, indent=1))
        for seed, *_ in ITEMS[subset]:
            draw(seed, size=48).save(root / "images" / coco_name(seed), format="JPEG", quality=95)
    return root


def official_loop(model, processor, images):
    from PIL import Image

    out = {}
    for subset in SUBSETS:
        itt, tot, p1_only, p2_only = [], [], [], []
        for seed, c, c2, n in ITEMS[subset]:
            u = direct_image(model, processor, Image.open(images / coco_name(seed)))
            p1, p2, neg = (direct_text(model, processor, t) for t in (c, c2, n))
            cos_p1, cos_p2, cos_neg = float(u @ p1), float(u @ p2), float(u @ neg)
            cos_p1p2, cos_p1_neg, cos_p2_neg = float(p1 @ p2), float(p1 @ neg), float(p2 @ neg)
            itt.append(cos_p1 > cos_neg and cos_p2 > cos_neg)
            p1_only.append(cos_p1 > cos_neg)
            p2_only.append(cos_p2 > cos_neg)
            tot.append(cos_p1p2 > cos_p1_neg and cos_p1p2 > cos_p2_neg)
        out[subset] = {"ITT": np.mean(itt), "TOT": np.mean(tot), "ITT_P1": np.mean(p1_only), "ITT_P2": np.mean(p2_only)}
    return out


@pytest.mark.parametrize("by", ["folder", "hub id"])
def test_sugarcrepe_pp_follows_the_official_script(tmp_path, monkeypatch, tiny_model_and_processor, by):
    import huggingface_hub

    model, processor = tiny_model_and_processor
    model.eval()
    root = make_sugarcrepe_pp(tmp_path / "scpp")
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: str(root) if repo_id == "Aman-J/SugarCrepe_pp" else None)
    data = str(root / "data") if by == "folder" else "Aman-J/SugarCrepe_pp"
    from modeling_tripletclip.evaluation.tasks import BenchmarkOptions

    benchmark = load_benchmark("sugarcrepe_pp", data, BenchmarkOptions(images=root / "images"))
    result = benchmark.run(CLIPEncoder(model, processor, batch_size=4, progress=False))
    expected = official_loop(model, processor, root / "images")
    for subset in SUBSETS:
        for name in ("ITT", "TOT", "ITT_P1", "ITT_P2"):
            assert result.metrics[f"{subset}/{name}"] == pytest.approx(expected[subset][name]), (subset, name)
    assert result.metrics["ITT"] == pytest.approx(np.mean([expected[s]["ITT"] for s in SUBSETS]))
    assert result.metrics["TOT"] == pytest.approx(np.mean([expected[s]["TOT"] for s in SUBSETS]))
    assert result.num_items == result.num_scored == sum(len(v) for v in ITEMS.values())


def test_sugarcrepe_pp_missing_images_are_named(tmp_path):
    root = make_sugarcrepe_pp(tmp_path / "scpp")
    (root / "images" / coco_name(5)).unlink()
    with pytest.raises(EvaluationInputError, match=coco_name(5)):
        load_benchmark("sugarcrepe_pp", root / "data")
    with pytest.raises(EvaluationInputError, match="none of SugarCrepe"):
        load_benchmark("sugarcrepe_pp", root / "images")
