"""BiVLC read as its Hub repository publishes it (``imirandam/BiVLC``: a parquet shard of the ``test`` split with
``image``, ``caption``, ``negative_image``, ``negative_caption``, ``type``, ``subtype``), by Hub id and by folder, and
any TripletData read the same way; scored against an independent loop that follows BiVLC's ``evaluate_BiVLC``."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from conftest import serve_hub_dataset
from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from test_eval_benchmarks import direct_image, direct_text, draw, png_bytes, write_hub_dataset

HUB_ID = "imirandam/BiVLC"
# (image seed, caption, negative image seed, negative caption, type, subtype). Row 2 repeats its images and row 3
# its captions: exact ties, which BiVLC's strict comparisons count as wrong.
ROWS = [
    (0, "a red square left of a blue ball", 1, "a blue square left of a red ball", "swap", "att"),
    (2, "a photo of a cat", 3, "a photo of a dog", "replace", "obj"),
    (4, "two cups on a table", 4, "two cups under a table", "replace", "rel"),
    (5, "a rocket on the launch pad", 6, "a rocket on the launch pad", "add", "obj"),
    (7, "a horse in a field", 8, "a horse and a dog in a field", "add", "obj"),
    (9, "a yellow star above a cube", 10, "a cube above a yellow star", "swap", "obj"),
]
FEATURES = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                              "negative_image": datasets.Image(), "negative_caption": datasets.Value("string"),
                              "type": datasets.Value("string"), "subtype": datasets.Value("string")})


def make_bivlc(folder):
    rows = [{"image": {"bytes": png_bytes(draw(a)), "path": None}, "caption": c0,
             "negative_image": {"bytes": png_bytes(draw(b)), "path": None}, "negative_caption": c1,
             "type": t, "subtype": u} for a, c0, b, c1, t, u in ROWS]
    return write_hub_dataset(folder, rows, FEATURES, split="test")


def official_loop(model, processor):
    """BiVLC's evaluate_BiVLC and main_evaluation_BiVLC.py, item by item."""
    decisions = []
    for a, c0, b, c1, t, u in ROWS:
        i0, i1 = direct_image(model, processor, draw(a)), direct_image(model, processor, draw(b))
        t0, t1 = direct_text(model, processor, c0), direct_text(model, processor, c1)
        s00, s01, s10, s11 = float(t0 @ i0), float(t0 @ i1), float(t1 @ i0), float(t1 @ i1)
        ipos, ineg, tpos, tneg = s00 > s10, s11 > s01, s00 > s01, s11 > s10
        decisions.append({"Ipos_2T": ipos, "Ineg_2T": ineg, "Tpos_2I": tpos, "Tneg_2I": tneg, "I2T": ipos and ineg,
                          "T2I": tpos and tneg, "group": ipos and ineg and tpos and tneg, "type": t, "subtype": u})
    return decisions


@pytest.fixture
def hub(monkeypatch, tmp_path):
    return serve_hub_dataset(monkeypatch, HUB_ID, make_bivlc(tmp_path / "BiVLC"))


@pytest.mark.parametrize("by", ["hub id", "folder"])
def test_bivlc_scores_follow_the_official_rule(hub, tiny_model_and_processor, by):
    model, processor = tiny_model_and_processor
    model.eval()
    result = load_benchmark("bivlc", HUB_ID if by == "hub id" else str(hub)).run(
        CLIPEncoder(model, processor, batch_size=4, progress=False))
    loop = official_loop(model, processor)
    assert not loop[2]["Tpos_2I"] and not loop[2]["Tneg_2I"]  # one image twice: both text-to-image ties are wrong
    assert not loop[3]["Ipos_2T"] and not loop[3]["Ineg_2T"]  # one caption twice: both image-to-text ties too
    assert result.num_items == result.num_scored == len(ROWS)
    for name in ("I2T", "T2I", "group", "Ipos_2T", "Ineg_2T", "Tpos_2I", "Tneg_2I"):
        assert result.metrics[name] == pytest.approx(np.mean([d[name] for d in loop])), name
        for kind in ("swap", "replace", "add"):
            rows = [d for d in loop if d["type"] == kind]
            assert result.metrics[f"{kind}/{name}"] == pytest.approx(np.mean([d[name] for d in rows]))
        rows = [d for d in loop if (d["type"], d["subtype"]) == ("add", "obj")]
        assert result.metrics[f"add_obj/{name}"] == pytest.approx(np.mean([d[name] for d in rows]))


def test_any_tripletdata_is_a_bivlc_style_evaluation_set(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    rows = [{"image": {"bytes": png_bytes(draw(a)), "path": None}, "caption": c0,
             "negative_image": {"bytes": png_bytes(draw(b)), "path": None}, "negative_caption": c1,
             "negative_kind": f"{t}_{u}"} for a, c0, b, c1, t, u in ROWS]
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  "negative_image": datasets.Image(), "negative_caption": datasets.Value("string"),
                                  "negative_kind": datasets.Value("string")})
    folder = write_hub_dataset(tmp_path / "tripletdata", rows, features, split="test")
    result = load_benchmark("bivlc", folder).run(CLIPEncoder(model, processor, batch_size=4, progress=False))
    loop = official_loop(model, processor)
    assert result.metrics["group"] == pytest.approx(np.mean([d["group"] for d in loop]))
    swap_att = [d for d in loop if (d["type"], d["subtype"]) == ("swap", "att")]
    assert result.metrics["swap_att/I2T"] == pytest.approx(np.mean([d["I2T"] for d in swap_att]))
