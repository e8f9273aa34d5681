"""CLIP-score filtering and the VQA quality check, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from test_synthesis_tiny_models import built, single_thread  # noqa: F401  (fixture)

from dataset_builders.synthesis.filters import CLIPScorer, filter_tripletdata, select_rows, triplet_score
from dataset_builders.synthesis.llm import LanguageModel
from dataset_builders.synthesis.quality import (
    QualityChecker,
    VQAModel,
    is_yes,
    parse_questions,
    summarize_vqa_scores,
    yes_share,
)


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.RandomState(seed)
    return [Image.fromarray(rng.randint(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


TEXTS = ["a red cube on a blue table", "two brown horses standing in a field", "A dog to the left of the cat.",
         "a person in a blue helmet"]


def test_triplet_score_and_selection():
    np.testing.assert_allclose(triplet_score([0.2, 0.4], [0.6, -0.4]), [0.4, 0.0])
    scores = [0.3, float("nan"), 0.9, 0.1, 0.9, 0.5]
    assert select_rows(scores).tolist() == [0, 2, 3, 4, 5]  # every scored row
    assert select_rows(scores, top_k=3).tolist() == [2, 4, 5]
    assert select_rows(scores, top_k=1).tolist() == [2]  # a tie goes to the earlier row
    assert select_rows(scores, threshold=0.5).tolist() == [2, 4, 5]
    assert select_rows(scores, top_k=2, threshold=0.95).tolist() == []
    assert select_rows(scores, top_k=0).tolist() == []
    with pytest.raises(ValueError, match="shape"):
        triplet_score([1.0], [1.0, 2.0])


def test_clip_pair_scores_equal_cosine_similarity(tmp_path_factory):
    path = built("clip", tmp_path_factory.getbasetemp())
    scorer = CLIPScorer.from_pretrained(path, batch_size=3)
    images = _images(4)
    scores = scorer.pair_scores(images, TEXTS)

    # independently: CLIP's own logits are logit_scale * cosine similarity
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(path).eval(), CLIPProcessor.from_pretrained(path)
    with torch.no_grad():
        out = model(**processor(text=TEXTS, images=images, return_tensors="pt", padding=True))
        expected = (out.logits_per_image.diagonal() / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)

    negatives = _images(4, seed=1)
    triplets = scorer.triplet_scores(images, TEXTS, negatives, TEXTS[::-1])
    np.testing.assert_allclose(triplets, (scores + scorer.pair_scores(negatives, TEXTS[::-1])) / 2, atol=1e-6)


def test_filter_tripletdata_keeps_the_best_rows(tmp_path):
    from dataset_builders.hub_layout import write_tripletdata
    from dataset_builders.sources import load_tripletdata

    scores = [0.1, 0.7, 0.3, 0.9, 0.5]
    images = _images(5)
    rows = [{"image": images[i], "caption": f"caption {i}", "negative_image": images[4 - i],
             "negative_caption": f"negative {i}", "id": str(i), "clip_score": s} for i, s in enumerate(scores)]
    write_tripletdata(rows, tmp_path / "all", progress=False)
    out = filter_tripletdata(tmp_path / "all", tmp_path / "best", top_k=2, progress=False)
    fresh = {"download_mode": "force_redownload"}  # datasets' cache key of a carded folder ignores its files
    kept = load_tripletdata(out, **fresh)
    assert kept["id"] == ["1", "3"]
    assert np.array_equal(np.asarray(kept[1]["image"]), np.asarray(images[3]))  # images copied as stored
    assert load_tripletdata(filter_tripletdata(tmp_path / "all", tmp_path / "t", threshold=0.5,
                                               progress=False), **fresh)["id"] == ["1", "3", "4"]
    with pytest.raises(ValueError, match="no 'vqa_score' column"):
        filter_tripletdata(tmp_path / "all", tmp_path / "x", top_k=1, column="vqa_score")


@pytest.mark.parametrize("text, questions", [
    ("1. Is there a dog?\n2. Is the dog brown?\n3) Is it on a couch?", ["Is there a dog?", "Is the dog brown?",
                                                                      "Is it on a couch?"]),
    ("- Is there a dog? - Is the cat black?", ["Is there a dog?", "Is the cat black?"]),
    ("Here are the questions:\nIs there a dog?\nIs there a dog?\nQ3: Are there two cats?",
     ["Is there a dog?", "Are there two cats?"]),
    ("No questions here.", []),
])
def test_parse_questions(text, questions):
    assert parse_questions(text, 5) == questions


def test_yes_share_and_summary():
    assert is_yes("Yes.") and is_yes(" yes") and not is_yes("no") and not is_yes("yesterday")
    assert yes_share(["yes", "no", "Yes", "2"]) == 0.5 and yes_share([]) is None
    summary = summarize_vqa_scores([1.0, 0.5, None, 0.0, 1.0, float("nan")])
    assert summary["rows"] == 6 and summary["scored"] == 4 and summary["unscored"] == 2
    assert summary["mean_yes"] == 0.625 and summary["median_yes"] == 0.75 and summary["all_yes"] == 0.5
    assert summary["histogram"] == {"0.0-0.2": 1, "0.2-0.4": 0, "0.4-0.6": 1, "0.6-0.8": 0, "0.8-1.0": 2}


@pytest.fixture(scope="module")
def vqa(tmp_path_factory) -> VQAModel:
    return VQAModel.from_pretrained(built("vilt", tmp_path_factory.getbasetemp()), batch_size=3)


def test_vqa_answers_equal_the_model_argmax(vqa, tmp_path_factory):
    from transformers import ViltForQuestionAnswering, ViltProcessor

    images = _images(8)
    questions = ["is there a dog ?", "is the cat black ?", "are there two horses ?", "is there a red cube ?"] * 2
    answers = vqa.answer(images, questions)
    assert set(answers) == {"yes", "no"}  # the tiny model answers both ways

    path = built("vilt", tmp_path_factory.getbasetemp())
    model, processor = ViltForQuestionAnswering.from_pretrained(path).eval(), ViltProcessor.from_pretrained(path)
    expected = []
    for image, question in zip(images, questions):
        with torch.no_grad():
            logits = model(**processor(images=image, text=question, return_tensors="pt")).logits
        expected.append(model.config.id2label[int(logits.argmax())])
    assert answers == expected


def test_quality_check_scores_each_row(vqa, tmp_path_factory):
    lm = LanguageModel.from_pretrained(built("causal_lm", tmp_path_factory.getbasetemp()))
    checker = QualityChecker(lm, vqa, num_questions=3, max_new_tokens=16)
    images = _images(3)
    questions = [["is there a dog ?", "is the cat black ?"], ["are there two horses ?"], []]
    results = checker.check(images, ["a dog", "two horses", "a cube"], questions=questions)
    for image, row_questions, result in zip(images, questions, results):
        assert result.questions == row_questions
        assert result.answers == vqa.answer([image] * len(row_questions), row_questions)
        assert result.vqa_score == (sum(a == "yes" for a in result.answers) / len(row_questions)
                                    if row_questions else None)
    # questions written by the (random) LLM: the machinery runs; nonsense yields no valid question, so no score
    written = checker.check(images[:2], ["a dog", "two horses"], seed=0)
    assert len(written) == 2 and all(len(r.questions) <= 3 for r in written)
    assert all(r.vqa_score is None or 0 <= r.vqa_score <= 1 for r in written)
    assert not math.isnan(summarize_vqa_scores([r.vqa_score for r in results])["mean_yes"])


def test_not_a_vqa_model(tmp_path_factory):
    with pytest.raises(ValueError, match="not a visual-question-answering model"):
        VQAModel.from_pretrained(built("clip", tmp_path_factory.getbasetemp()))
