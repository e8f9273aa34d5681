"""The scoring rules of the benchmarks against straightforward loop implementations on hand-made score matrices,
including exact ties (wrong for SugarCrepe and Winoground) and images with several captions (retrieval)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataset_builders.synthesis.rules import NEGATIVE_KINDS as SUGARCREPE_SUBSETS
from modeling_tripletclip.evaluation.metrics import (
    rank_of_targets,
    retrieval_recall,
    rowwise_cosine,
    similarity_summary,
    sugarcrepe_accuracy,
    sugarcrepe_summary,
    winoground_metrics,
    zero_shot_metrics,
)

# -- independent reference implementations (plain loops over Python floats) ---------------------------------------


def loop_sugarcrepe(pos, neg):
    correct = 0
    for p, n in zip(pos, neg):
        if p > n:
            correct += 1
    return correct / len(pos)


def loop_winoground(s):
    text = image = group = 0
    for item in s:
        c0i0, c0i1, c1i0, c1i1 = item[0][0], item[0][1], item[1][0], item[1][1]
        t = c0i0 > c1i0 and c1i1 > c0i1
        i = c0i0 > c0i1 and c1i1 > c1i0
        text += t
        image += i
        group += t and i
    n = len(s)
    return {"text": text / n, "image": image / n, "group": group / n}


def pessimistic_order(scores_row, correct):
    """Candidates sorted by decreasing score; among equal scores the wrong ones first."""
    return sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j in correct))


def loop_retrieval(scores, owner, ks):
    num_images, num_texts = len(scores), len(scores[0])
    out = {}
    for k in ks:
        hits = 0
        for t in range(num_texts):
            column = [scores[i][t] for i in range(num_images)]
            if owner[t] in pessimistic_order(column, {owner[t]})[:k]:
                hits += 1
        out[f"image_retrieval_recall@{k}"] = hits / num_texts
    for k in ks:
        hits = 0
        for i in range(num_images):
            own = {t for t in range(num_texts) if owner[t] == i}
            if own & set(pessimistic_order(scores[i], own)[:k]):
                hits += 1
        out[f"text_retrieval_recall@{k}"] = hits / num_images
    return out


def loop_zero_shot(logits, labels, ks=(1, 5)):
    out = {}
    for k in ks:
        out[f"top{k}"] = sum(y in pessimistic_order(row, {y})[:k] for row, y in zip(logits, labels)) / len(labels)
    recalls = []
    for c in sorted(set(labels)):
        members = [row for row, y in zip(logits, labels) if y == c]
        recalls.append(sum(pessimistic_order(row, {c})[0] == c for row in members) / len(members))
    out["mean_per_class_recall"] = sum(recalls) / len(recalls)
    return out


# -- SugarCrepe -----------------------------------------------------------------------------------------------------


def test_sugarcrepe_accuracy_counts_ties_as_wrong():
    pos = [0.9, 0.5, 0.5, 0.1, 0.30000001, -0.2]
    neg = [0.1, 0.5, 0.6, 0.1, 0.3, -0.3]  # two exact ties
    assert sugarcrepe_accuracy(pos, neg) == loop_sugarcrepe(pos, neg) == 3 / 6


def test_sugarcrepe_accuracy_random_against_loop():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, size=200) / 4  # coarse values: many ties
    neg = rng.integers(0, 5, size=200) / 4
    assert sugarcrepe_accuracy(pos, neg) == pytest.approx(loop_sugarcrepe(pos.tolist(), neg.tolist()), abs=0)


def test_sugarcrepe_summary_averages():
    accuracies = {s: (i + 1) / 10 for i, s in enumerate(SUGARCREPE_SUBSETS)}
    summary = sugarcrepe_summary(accuracies)
    assert summary["overall"] == pytest.approx(sum(accuracies.values()) / 7)
    assert summary["replace"] == pytest.approx(
        (accuracies["replace_obj"] + accuracies["replace_att"] + accuracies["replace_rel"]) / 3
    )
    assert summary["swap"] == pytest.approx((accuracies["swap_obj"] + accuracies["swap_att"]) / 2)
    assert summary["add"] == pytest.approx((accuracies["add_obj"] + accuracies["add_att"]) / 2)
    # Without all seven subsets there is no overall, and a kind appears only when all its subsets are present.
    partial = sugarcrepe_summary({"swap_obj": 0.5, "swap_att": 0.7, "add_obj": 0.1})
    assert "overall" not in partial and "add" not in partial and partial["swap"] == pytest.approx(0.6)


def test_sugarcrepe_three_overall_conventions():
    accuracies = {s: (i + 1) / 10 for i, s in enumerate(SUGARCREPE_SUBSETS)}
    sizes = {s: 10 * (i + 1) for i, s in enumerate(SUGARCREPE_SUBSETS)}
    summary = sugarcrepe_summary(accuracies, sizes)
    correct = sum(accuracies[s] * sizes[s] for s in SUGARCREPE_SUBSETS)
    assert summary["overall_weighted"] == pytest.approx(correct / sum(sizes.values()))  # micro average
    assert summary["overall_of_kinds"] == pytest.approx((summary["replace"] + summary["swap"] + summary["add"]) / 3)
    assert summary["overall"] == pytest.approx(sum(accuracies.values()) / 7)
    assert len({round(summary[k], 6) for k in ("overall", "overall_weighted", "overall_of_kinds")}) == 3
    assert "overall_weighted" not in sugarcrepe_summary(accuracies)  # no sizes, no weighted mean


# -- Winoground -----------------------------------------------------------------------------------------------------


def test_winoground_hand_made_with_ties():
    # scores[n][caption][image]
    s = [
        [[0.9, 0.1], [0.2, 0.8]],  # all correct
        [[0.9, 0.1], [0.9, 0.95]],  # text wrong by a tie s(c0,i0) == s(c1,i0); image right
        [[0.5, 0.5], [0.1, 0.8]],  # image wrong by a tie s(c0,i0) == s(c0,i1); text right
        [[0.1, 0.9], [0.8, 0.2]],  # everything swapped
        [[0.3, 0.3], [0.3, 0.3]],  # constant scorer: all wrong
    ]
    got = winoground_metrics(np.array(s))
    assert got == loop_winoground(s) == {"text": 2 / 5, "image": 2 / 5, "group": 1 / 5}


def test_winoground_random_against_loop_and_tags():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 4, size=(300, 2, 2)) / 3
    tags = rng.choice(["Object", "Relation", "Both"], size=300).tolist()
    got = winoground_metrics(s, tags=tags)
    assert {k: got[k] for k in ("text", "image", "group")} == pytest.approx(loop_winoground(s.tolist()), abs=0)
    for tag in ("Object", "Relation", "Both"):
        subset = [row for row, t in zip(s.tolist(), tags) if t == tag]
        expected = loop_winoground(subset)
        for name in ("text", "image", "group"):
            assert got[f"{tag}/{name}"] == pytest.approx(expected[name], abs=0)


# -- Retrieval ------------------------------------------------------------------------------------------------------


def test_retrieval_hand_made_several_captions_per_image():
    # 3 images; captions 0,1 -> image 0; 2,3,4 -> image 1; 5 -> image 2. scores[image][caption]
    owner = [0, 0, 1, 1, 1, 2]
    scores = [
        [0.9, 0.2, 0.1, 0.3, 0.0, 0.5],
        [0.1, 0.8, 0.2, 0.4, 0.6, 0.5],
        [0.3, 0.1, 0.2, 0.1, 0.2, 0.5],  # caption 5 ties across all images
    ]
    got = retrieval_recall(np.array(scores), owner, ks=(1, 2))
    # Image retrieval (per caption): c0 -> i0 top (hit@1); c1 -> i1 top, i0 second (miss@1, hit@2);
    # c2: i1 (owner) ties with i2 at 0.2 -> ranked after it (miss@1, hit@2); c3, c4 -> i1 (hit@1);
    # c5: all three images tie, the owner is ranked last (miss@1, miss@2).
    assert got["image_retrieval_recall@1"] == pytest.approx(3 / 6)
    assert got["image_retrieval_recall@2"] == pytest.approx(5 / 6)
    # Text retrieval (per image): i0 best caption c0 (own) -> hit; i1 best c1 (0.8, not own), then c4 (own): miss@1,
    # hit@2; i2: c5 (0.5, own) -> hit@1.
    assert got["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert got["text_retrieval_recall@2"] == pytest.approx(3 / 3)
    assert got == pytest.approx(loop_retrieval(scores, owner, (1, 2)))


def test_retrieval_tie_between_own_captions_is_a_hit():
    # Two own captions tied at the top count as a hit; an own caption tied with a wrong one does not.
    assert retrieval_recall(np.array([[0.7, 0.7, 0.1]]), [0, 0, 0], ks=(1,))["text_retrieval_recall@1"] == 1.0
    got = retrieval_recall(np.array([[0.7, 0.7], [0.1, 0.9]]), [0, 1], ks=(1,))
    assert got["text_retrieval_recall@1"] == 0.5  # image 0: its caption ties with caption 1 -> miss


def test_retrieval_random_against_loop():
    rng = np.random.default_rng(2)
    owner = sorted(rng.integers(0, 12, size=40).tolist())
    scores = rng.integers(0, 6, size=(12, 40)) / 5  # many ties
    assert retrieval_recall(scores, owner, ks=(1, 5, 10)) == pytest.approx(
        loop_retrieval(scores.tolist(), owner, (1, 5, 10)), abs=0
    )


# -- Zero-shot ------------------------------------------------------------------------------------------------------


def test_zero_shot_hand_made():
    logits = [
        [3.0, 1.0, 2.0],  # class 0: correct
        [1.0, 1.0, 0.0],  # class 1: tie with class 0 -> wrong at top-1, right at top-2
        [0.0, 2.0, 1.0],  # class 2: second
        [0.0, 0.0, 5.0],  # class 2: correct
    ]
    labels = [0, 1, 2, 2]
    got = zero_shot_metrics(np.array(logits), labels, ks=(1, 2))
    assert got["top1"] == pytest.approx(2 / 4)
    assert got["top2"] == pytest.approx(4 / 4)
    assert got["mean_per_class_recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert got == pytest.approx(loop_zero_shot(logits, labels, ks=(1, 2)))


def test_zero_shot_random_against_loop():
    rng = np.random.default_rng(3)
    logits = rng.integers(0, 8, size=(100, 10)) / 7
    labels = rng.integers(0, 10, size=100).tolist()
    assert zero_shot_metrics(logits, labels) == pytest.approx(loop_zero_shot(logits.tolist(), labels), abs=0)


def test_rank_of_targets_pessimistic():
    assert rank_of_targets(np.array([[1.0, 1.0, 0.5], [0.2, 0.9, 0.9]]), [0, 2]).tolist() == [1, 1]


def test_similarity_helpers():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, 1.0]])
    assert rowwise_cosine(a, b).tolist() == pytest.approx([1.0, 0.0])
    summary = similarity_summary([0.0, 0.5, 1.0], "image_similarity")
    assert summary == pytest.approx({"image_similarity_mean": 0.5, "image_similarity_std": math.sqrt(1 / 6),
                                     "image_similarity_median": 0.5})


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="same length"):
        sugarcrepe_accuracy([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match=r"\(num_items, 2, 2\)"):
        winoground_metrics(np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="one image index per text"):
        retrieval_recall(np.zeros((2, 3)), [0, 1])
