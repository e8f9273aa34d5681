"""MMVP-VLM as its Hub repository publishes it (``Questions.csv`` with ``Index, Type, Statement`` rows, images
``MLLM_VLM Images/<type>/<index>.jpg``; 9 patterns x 15 pairs = 135), by download folder and by Hub id (only
`snapshot_download`'s network edge replaced); scored against an independent re-implementation of MMVP's
``scripts/evaluate_vlm.py`` that uses the model's own softmax, ties included."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from test_eval_benchmarks import draw

PATTERNS = ("Orientation and Direction", "Presence of Specific Features", "State and Condition", "Quantity and Count",
            "Positional and Relational Context", "Color and Appearance", "Structural Characteristics", "Texts",
            "Viewpoint and Perspective")
WORDS = ("a dog facing left", "a dog facing right", "a red car", "a blue car", "two cups", "three cups")


def make_mmvp(root):
    """135 pairs; pair 3 shows one picture twice (an exact tie, which the script resolves as image 2)."""
    images = root / "MLLM_VLM Images"
    rows = [("Index", "Type", "Statement")]
    for k in range(135):
        qtype = PATTERNS[k // 15]
        (images / qtype).mkdir(parents=True, exist_ok=True)
        for j, qid in enumerate((2 * k + 1, 2 * k + 2)):
            seed = 2 * k if k == 3 else 2 * k + j
            draw(seed, size=40).convert("RGB").save(images / qtype / f"{qid}.jpg", format="JPEG", quality=95)
            rows.append((str(qid), qtype, WORDS[(2 * k + j) % len(WORDS)]))
    with open(root / "Questions.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def official(model, processor, root):
    from PIL import Image

    with open(root / "Questions.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    correct = dict.fromkeys(PATTERNS, 0)
    for k in range(len(rows) // 2):
        (q1, t1, s1), (q2, _, s2) = rows[2 * k], rows[2 * k + 1]
        imgs = [Image.open(root / "MLLM_VLM Images" / t1 / f"{q}.jpg") for q in (q1, q2)]
        preds = []
        for statement in (s1, s2):
            inputs = processor(text=["a photo of " + statement], images=imgs, return_tensors="pt", padding=True)
            with torch.no_grad():
                probs = model(**inputs).logits_per_text.softmax(dim=-1)[0]
            preds.append("img1" if probs[0] > 0.5 else "img2")
        gts = ["img1" if int(q) % 2 == 1 else "img2" for q in (q1, q2)]
        correct[PATTERNS[k // 15]] += preds == gts
    return {p: c / (len(rows) // 2 // 9) for p, c in correct.items()}


@pytest.mark.parametrize("by", ["folder", "hub id"])
def test_mmvp_follows_the_official_script(tmp_path, monkeypatch, tiny_model_and_processor, by):
    import huggingface_hub

    model, processor = tiny_model_and_processor
    model.eval()
    root = make_mmvp(tmp_path / "MMVP_VLM")
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: str(root) if repo_id == "MMVP/MMVP_VLM" else None)
    result = load_benchmark("mmvp", str(root) if by == "folder" else "MMVP/MMVP_VLM").run(
        CLIPEncoder(model, processor, batch_size=16, progress=False))
    expected = official(model, processor, root)
    for pattern in PATTERNS:
        assert result.metrics[pattern] == pytest.approx(expected[pattern]), pattern
    assert result.metrics["average"] == pytest.approx(np.mean(list(expected.values())))
    assert result.num_items == 135
