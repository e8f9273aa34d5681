"""ARO's COCO-Order and Flickr30k-Order: the precomputed options (the official ``test_cases``) beside a Karpathy test
split, and a copy of a Hub mirror, scored against an independent loop that follows ``dataset_zoo/aro_datasets.py``
(``COCO_Order.evaluate_scores``: ``np.argmax`` over the options, right when it is the first, so a tie with it is
right; the mean is ``Precision@1``); the word-order shuffles on pre-tagged captions against a restatement of
``dataset_zoo/perturbations.py`` drawing from the global generators after ``seed_all(1)``; without spaCy's model,
NLTK's punkt data and precomputed options, the message that says how to install them."""

from __future__ import annotations

import itertools
import json
import random
import re

import datasets
import numpy as np
import pytest
from PIL import Image

from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from modeling_tripletclip.evaluation.errors import EvaluationInputError
from modeling_tripletclip.evaluation.tasks import BenchmarkOptions
from modeling_tripletclip.evaluation.tasks.aro import (
    order_items,
    order_precision_at_1,
    pre_caption,
    shuffle_allbut_nouns_and_adj,
    shuffle_nouns_and_adj,
    shuffle_trigrams,
    shuffle_within_trigrams,
    trigrams,
)
from test_eval_aro import make_aro
from test_eval_benchmarks import direct_image, direct_text, draw, png_bytes, write_hub_dataset

COCO_IMAGES = ["val2014/COCO_val2014_000000000042.jpg", "val2014/COCO_val2014_000000000073.jpg",
               "val2014/COCO_val2014_000000000074.jpg"]
FLICKR_IMAGES = ["flickr30k-images/1007129816.jpg", "flickr30k-images/1009434119.jpg"]
CAPTIONS = [["A red cup on a wooden table.", "A cup sits on the table.", "Red cup, brown table"],
            ["Two dogs run across the green grass.", "Dogs playing outside."],
            ["A man rides a horse near the old barn.", "A person on a horse.", "A horse and its rider."]]


def _options(caption: str, k: int) -> list[str]:
    """The right caption (cleaned) and four word-order perturbations of it, written out here."""
    words = pre_caption(caption).split(" ")
    return [" ".join(words)] + [" ".join(words[j:] + words[:j]) if j < len(words) else " ".join(words[::-1])
                                for j in range(1 + k % 2, 5 + k % 2)]


def _write_part(folder, karpathy_name, order_name, images, captions, seed, tie_at):
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        (folder / image).parent.mkdir(parents=True, exist_ok=True)
        draw(seed + k, size=64).save(folder / image, format="JPEG", quality=95)
    annotation = [{"image": image, "caption": list(c), "image_id": k}
                  for k, (image, c) in enumerate(zip(images, captions))]
    (folder / karpathy_name).write_text(json.dumps(annotation))
    items = [{"image": entry["image"], "caption_options": _options(caption, k)}
             for entry in annotation for k, caption in enumerate(entry["caption"])]
    items[tie_at]["caption_options"] = [items[tie_at]["caption_options"][0]] * 5  # an exact tie of all five
    (folder / order_name).write_text(json.dumps(items))
    return items


def make_order(root):
    """COCO-Order in the ARO folder itself, Flickr30k-Order in its flickr30k/ sub-folder, each as the official code
    lays it out (the Karpathy test JSON, images relative to it) with the precomputed options beside it."""
    coco = _write_part(root, "coco_karpathy_test.json", "coco_order.json", COCO_IMAGES, CAPTIONS, 0, 4)
    flickr = _write_part(root / "flickr30k", "flickr30k_test.json", "flickr30k_order.json", FLICKR_IMAGES,
                         CAPTIONS[:2], 10, 0)
    return coco, flickr


def official_precision(model, processor, folder, items):
    """``COCO_Order.evaluate_scores`` on one image and its options per item: argmax == 0, then the mean."""
    correct = []
    for item in items:
        u = direct_image(model, processor, Image.open(folder / item["image"]).convert("RGB"))
        scores = [float(u @ direct_text(model, processor, caption)) for caption in item["caption_options"]]
        correct.append(np.argmax(scores) == 0)
    return np.array(correct)


def test_precision_at_1_is_the_share_of_rows_whose_first_maximum_is_the_first_option():
    scores = np.array([[0.5, 0.5, 0.1], [0.1, 0.2, 0.3], [0.3, 0.1, 0.2], [0.1, 0.4, 0.4]])
    assert order_precision_at_1(scores) == pytest.approx(2 / 4)  # rows 0 (a tie with the right one) and 2


def test_precomputed_order_options_are_scored_as_the_official_code(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    root = tmp_path / "aro"
    make_aro(root)  # VG-Relation and VG-Attribution beside them are scored as before
    coco, flickr = make_order(root)
    benchmark = load_benchmark("aro", root)
    result = benchmark.run(CLIPEncoder(model, processor, batch_size=8, progress=False))

    coco_correct = official_precision(model, processor, root, coco)
    flickr_correct = official_precision(model, processor, root / "flickr30k", flickr)
    assert coco_correct[4] and flickr_correct[0]  # the ties: right
    assert result.metrics["coco_order/precision@1"] == pytest.approx(coco_correct.mean())
    assert result.metrics["flickr30k_order/precision@1"] == pytest.approx(flickr_correct.mean())
    assert "vg_relation/macro_accuracy" in result.metrics and "vg_attribution/macro_accuracy" in result.metrics
    assert result.num_items == result.num_scored == 6 + 33 + len(coco) + len(flickr)
    assert any("precomputed options" in note and "coco_order.json" in note for note in result.notes)

    first = load_benchmark("aro", root, BenchmarkOptions(max_items=3))
    assert len(first.order["coco_order"].items) == 3


def test_a_copy_of_the_hub_mirror_is_scored_as_published(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    columns = ["correct_caption", "hard_text_1", "hard_text_2", "hard_text_3", "hard_text_4"]
    pictures = [draw(500 + k, size=48) for k in range(3)]
    rows = []
    for k, caption in enumerate(c for group in CAPTIONS for c in group):
        options = _options(caption, k) if k != 2 else [pre_caption(caption)] * 5  # row 2: an exact tie
        rows.append({"images": {"bytes": png_bytes(pictures[k % 3]), "path": None}, **dict(zip(columns, options))})
    features = datasets.Features({"images": datasets.Image(), **{c: datasets.Value("string") for c in columns}})
    write_hub_dataset(tmp_path / "aro" / "coco_order", rows, features)

    result = load_benchmark("aro", tmp_path / "aro").run(CLIPEncoder(model, processor, batch_size=8, progress=False))
    items = [{"image": f"{k % 3}.png", "caption_options": [row[c] for c in columns]} for k, row in enumerate(rows)]
    for k, picture in enumerate(pictures):
        picture.save(tmp_path / f"{k}.png")
    correct = official_precision(model, processor, tmp_path, items)
    assert correct[2]
    assert result.metrics == {"coco_order/precision@1": pytest.approx(correct.mean())}
    assert result.num_items == result.num_scored == len(rows)


def _order_tools_installed() -> bool:
    try:
        import nltk
        import spacy

        spacy.load("en_core_web_sm")
        nltk.word_tokenize("A check.")
    except (ImportError, OSError, LookupError):
        return False
    return True


@pytest.mark.skipif(_order_tools_installed(), reason="spaCy's en_core_web_sm and NLTK's punkt are installed here")
def test_without_spacy_and_precomputed_options_the_message_says_how_to_install_them(tmp_path):
    root = tmp_path / "aro"
    make_order(root)
    (root / "coco_order.json").unlink()
    with pytest.raises(EvaluationInputError) as raised:
        load_benchmark("aro", root)
    message = str(raised.value)
    assert "pip install spacy && python -m spacy download en_core_web_sm" in message
    assert "python -m nltk.downloader punkt" in message and "coco_order.json" in message
    assert "coco_karpathy_test.json" in message


# The shuffles, on pre-tagged captions ----------------------------------------------------------------------------

#: Captions as spaCy's en_core_web_sm tokenizes and tags them, and as nltk.word_tokenize splits them (written out).
TAGGED = {
    "A small brown dog chases a red ball on the green grass.": (
        ["A", "small", "brown", "dog", "chases", "a", "red", "ball", "on", "the", "green", "grass", "."],
        ["DT", "JJ", "JJ", "NN", "VBZ", "DT", "JJ", "NN", "IN", "DT", "JJ", "NN", "."]),
    "Two men are riding horses near the old barn": (
        ["Two", "men", "are", "riding", "horses", "near", "the", "old", "barn"],
        ["CD", "NNS", "VBP", "VBG", "NNS", "IN", "DT", "JJ", "NN"]),
    "A cat.": (["A", "cat", "."], ["DT", "NN", "."]),
    "People (in hats) wait at the busy station for a late train while children play with small toys near the "
    "tall windows of the old waiting room and a dog sleeps": (
        ["People", "(", "in", "hats", ")", "wait", "at", "the", "busy", "station", "for", "a", "late", "train",
         "while", "children", "play", "with", "small", "toys", "near", "the", "tall", "windows", "of", "the", "old",
         "waiting", "room", "and", "a", "dog", "sleeps"],
        ["NNS", "-LRB-", "IN", "NNS", "-RRB-", "VBP", "IN", "DT", "JJ", "NN", "IN", "DT", "JJ", "NN", "IN", "NNS",
         "VBP", "IN", "JJ", "NNS", "IN", "DT", "JJ", "NNS", "IN", "DT", "JJ", "NN", "NN", "CC", "DT", "NN", "VBZ"]),
}
ANNOTATION = [{"image": "a.jpg", "caption": list(TAGGED)[:2]}, {"image": "b.jpg", "caption": list(TAGGED)[2:]}]


def tag(caption):
    return TAGGED[caption]


def tokenize(caption):
    return list(TAGGED[caption][0])


class _Token:
    def __init__(self, text, tag_):
        self.text, self.tag_ = text, tag_


def _official_style_items(annotation):
    """``COCO_Order.__init__`` with ``TextShuffler``'s four shuffles, restated: a spaCy-like doc of tokens with
    ``.text`` and ``.tag_``, ``np.random.permutation`` and ``random.shuffle`` on the global generators after
    ``seed_all(1)``, ``pre_caption`` with 30 words."""

    def clean(caption):
        caption = re.sub(r"\s{2,}", " ", re.sub(r"([.!\"()*#:;~])", " ", caption.lower())).rstrip("\n").strip(" ")
        words = caption.split(" ")
        return " ".join(words[:30]) if len(words) > 30 else caption

    def groups_of_three(words):
        groups, group = [], []
        for i, word in enumerate(words):
            group.append(word)
            if i % 3 == 2:
                groups.append(group)
                group = []
        return groups + ([group] if group else [])

    random.seed(1)
    np.random.seed(1)
    cases = []
    for entry in annotation:
        for caption in entry["caption"]:
            doc = [_Token(t, g) for t, g in zip(*TAGGED[caption])]
            options = [clean(caption)]
            text = np.array([t.text for t in doc])
            nouns = [i for i, t in enumerate(doc) if t.tag_ in ["NN", "NNS", "NNP", "NNPS"]]
            adjectives = [i for i, t in enumerate(doc) if t.tag_ in ["JJ", "JJR", "JJS"]]
            text[nouns] = np.random.permutation(text[nouns])
            text[adjectives] = np.random.permutation(text[adjectives])
            options.append(clean(" ".join(text)))
            text = np.array([t.text for t in doc])
            rest = np.ones(len(doc))
            rest[[i for i, t in enumerate(doc) if t.tag_ in ["NN", "NNS", "NNP", "NNPS", "JJ", "JJR", "JJS"]]] = 0
            rest = rest.astype(bool)
            text[rest] = np.random.permutation(text[rest])
            options.append(clean(" ".join(text)))
            groups = groups_of_three([t.text for t in doc])
            for group in groups:
                random.shuffle(group)
            options.append(clean(" ".join(" ".join(g) for g in groups)))
            groups = groups_of_three([t.text for t in doc])
            random.shuffle(groups)
            options.append(clean(" ".join(" ".join(g) for g in groups)))
            cases.append({"image": entry["image"], "caption_options": options})
    return cases


def test_order_items_draw_as_the_official_code_after_seed_all():
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        expected = _official_style_items(ANNOTATION)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    items = order_items(ANNOTATION, tag, tokenize)
    assert items == expected
    assert [i["image"] for i in items] == ["a.jpg", "a.jpg", "b.jpg", "b.jpg"]
    assert all(len(i["caption_options"]) == 5 for i in items)
    assert len(items[3]["caption_options"][0].split(" ")) == 30  # the long caption cut to 30 words
    assert order_items(ANNOTATION, tag, tokenize, max_items=3) == items[:3]
    assert order_items(ANNOTATION, tag, tokenize, seed=2) != items


def test_the_shuffles_on_hand_worked_captions():
    assert pre_caption('A Dog, on the "grass".\n') == "a dog, on the grass"
    assert pre_caption("one  two\tthree (four)") == "one two\tthree four"  # a lone tab stays, as there
    assert pre_caption(" ".join(map(str, range(40)))) == " ".join(map(str, range(30)))
    assert trigrams(list("abcdefgh")) == [["a", "b", "c"], ["d", "e", "f"], ["g", "h"]]
    assert trigrams([]) == []

    rng = np.random.RandomState(0)
    # One noun and one adjective: nothing to permute.
    assert shuffle_nouns_and_adj(["a", "red", "cup", "."], ["DT", "JJ", "NN", "."], rng) == "a red cup ."
    # Only one word that is neither: the others stay.
    assert shuffle_allbut_nouns_and_adj(["red", "cups", "fall"], ["JJ", "NNS", "VBP"], rng) == "red cups fall"
    # One word per trigram place: within-trigram shuffles of one-word trigrams and one trigram change nothing.
    assert shuffle_within_trigrams(["dog"], random.Random(0)) == "dog"
    assert shuffle_trigrams(["a", "b", "c"], random.Random(0)) == "a b c"

    tokens, tags = TAGGED["A small brown dog chases a red ball on the green grass."]
    for seed in range(5):
        shuffled = shuffle_nouns_and_adj(tokens, tags, np.random.RandomState(seed)).split(" ")
        for kind in (("NN",), ("JJ",)):
            places = [i for i, t in enumerate(tags) if t in kind]
            assert sorted(shuffled[i] for i in places) == sorted(tokens[i] for i in places)
        assert [w for w, t in zip(shuffled, tags) if t not in ("NN", "JJ")] == [
            w for w, t in zip(tokens, tags) if t not in ("NN", "JJ")]
        kept = shuffle_allbut_nouns_and_adj(tokens, tags, np.random.RandomState(seed)).split(" ")
        assert [w for w, t in zip(kept, tags) if t in ("NN", "JJ")] == [
            w for w, t in zip(tokens, tags) if t in ("NN", "JJ")]
        assert sorted(kept) == sorted(tokens)
        within = shuffle_within_trigrams(tokens, random.Random(seed)).split(" ")
        assert [sorted(g) for g in trigrams(within)] == [sorted(g) for g in trigrams(tokens)]
        across = shuffle_trigrams(tokens, random.Random(seed))
        assert across in {" ".join(" ".join(g) for g in order) for order in itertools.permutations(trigrams(tokens))}
