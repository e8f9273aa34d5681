"""What'sUp as its official code lays out its ``data/`` folder (``controlled_images_dataset.json`` +
``controlled_images/``, ``controlled_clevr_dataset.json`` + ``controlled_clevr/``, ``coco_qa_{one,two}_obj.json`` +
``val2017/``, ``vg_qa_{one,two}_obj.json`` + ``vg_images/``), scored against an independent loop that follows
``dataset_zoo/aro_datasets.py`` (``Controlled_Images``, ``COCO_QA``, ``VG_QA``: ``np.argmax`` over the options, the
first option right, a tie with it right; pair and set accuracies from the image file names)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from modeling_tripletclip.evaluation import CLIPEncoder, load_benchmark
from modeling_tripletclip.evaluation.errors import EvaluationInputError
from modeling_tripletclip.evaluation.tasks import BenchmarkOptions
from modeling_tripletclip.evaluation.tasks.whatsup import controlled_accuracies, first_option_correct
from test_eval_benchmarks import direct_image, direct_text, draw

PHRASES_A = {"left_of": "to the left of", "right_of": "to the right of", "on": "on", "under": "under"}
PHRASES_B = {"left_of": "to the left of", "right_of": "to the right of", "in-front_of": "in front of",
             "behind": "behind"}
SETS_A = [("mug", "table"), ("beer-bottle", "armchair"), ("dog", "sofa")]
SETS_B = [("cube", "sphere"), ("cylinder", "cube")]
COCO_IDS, VG_IDS = [139, 285, 632], [2317, 2318, 2319]


def _controlled(root, annotation, folder, sets, phrases, tied_set, seed):
    (root / folder).mkdir(parents=True)
    items = []
    for s, (a, b) in enumerate(sets):
        captions = {prep: f"A {a.replace('-', ' ')} {phrase} a {b}" for prep, phrase in phrases.items()}
        for k, prep in enumerate(phrases):
            name = f"{a}_{prep}_{b}.jpeg"
            draw(seed + 4 * s + k, size=40).save(root / folder / name, format="JPEG", quality=95)
            wrong = [c for p, c in captions.items() if p != prep]
            options = [captions[prep]] * 4 if s == tied_set else [captions[prep], *wrong[k % 3:], *wrong[: k % 3]]
            items.append({"image_path": f"data/{folder}/{name}", "caption_options": options})
    items = items[1::2] + items[0::2]  # the sets are read from the file names, not from the order
    (root / annotation).write_text(json.dumps(items))


def make_whatsup(root):
    """Controlled-A: three sets of four, the third with four identical options (exact ties, right by np.argmax);
    Controlled-B: two sets; COCO and VG one- and two-object items, the last of each a tie."""
    _controlled(root, "controlled_images_dataset.json", "controlled_images", SETS_A, PHRASES_A, 2, 0)
    _controlled(root, "controlled_clevr_dataset.json", "controlled_clevr", SETS_B, PHRASES_B, None, 50)
    (root / "val2017").mkdir()
    (root / "vg_images").mkdir()
    for k, i in enumerate(COCO_IDS):
        draw(100 + k, size=48).save(root / "val2017" / f"{i:012d}.jpg", format="JPEG", quality=95)
    for k, i in enumerate(VG_IDS):
        draw(200 + k, size=48).save(root / "vg_images" / f"{i}.jpg", format="JPEG", quality=95)
    sides = [("left", "right"), ("right", "left"), ("top", "top")]
    (root / "coco_qa_one_obj.json").write_text(json.dumps(
        [[i, f"A photo of a dog on the {p}", f"A photo of a dog on the {q}"] for i, (p, q) in zip(COCO_IDS, sides)]))
    (root / "vg_qa_one_obj.json").write_text(json.dumps(
        [[i, f"A photo of a cup on the {p}", f"A photo of a cup on the {q}"] for i, (p, q) in zip(VG_IDS, sides)]))
    two = [("to the left of", "to the right of"), ("above", "below"), ("below", "below")]
    (root / "coco_qa_two_obj.json").write_text(json.dumps(
        [[i, f"A photo of a dog {p} a cat", f"A photo of a dog {q} a cat"] for i, (p, q) in zip(COCO_IDS, two)]))
    two = [("in front of", "behind"), ("behind", "in front of"), ("to the right of", "to the right of")]
    (root / "vg_qa_two_obj.json").write_text(json.dumps(
        [[i, f"A photo of a bag {p} a chair", f"A photo of a bag {q} a chair"] for i, (p, q) in zip(VG_IDS, two)]))
    return root


def official_scores(model, processor, image_paths, caption_options):
    """N x 1 x K cosine similarities, as ``get_retrieval_scores_batched``."""
    scores = []
    for path, options in zip(image_paths, caption_options):
        u = direct_image(model, processor, Image.open(path).convert("RGB"))
        scores.append([[float(u @ direct_text(model, processor, c)) for c in options]])
    return np.array(scores)


def official_controlled(root, annotation, folder, subset, scores):
    """``Controlled_Images.evaluate_scores``, its prints returned (as fractions) with its per-preposition records."""
    dataset = json.loads((root / annotation).read_text())
    preds = np.argmax(np.squeeze(scores, axis=1), axis=-1)
    correct_mask = preds == 0
    names = [d["image_path"].split("/")[-1] for d in dataset]
    third, fourth = ("on", "under") if subset == "A" else ("in-front", "behind")
    eval_dict = {(n.split("_")[0], n.split("_")[-1][:-5]): {"left": 0, "right": 0, third: 0, fourth: 0} for n in names}
    for n, correct in zip(names, correct_mask):
        eval_dict[(n.split("_")[0], n.split("_")[-1][:-5])][n.split("_")[1]] = correct
    pair_correct = set_correct = 0
    for correct_dict in eval_dict.values():
        pair_correct += bool(correct_dict["left"] and correct_dict["right"])
        pair_correct += bool(correct_dict[third] and correct_dict[fourth])
        set_correct += sum(correct_dict.values()) == 4
    prepositions = []
    for d in dataset:
        if "left_of" in d["image_path"]:
            prepositions.append("left_of")
        elif "right_of" in d["image_path"]:
            prepositions.append("right_of")
        elif (subset == "A" and "_on_" in d["image_path"]) or (subset == "B" and "_in-front_of_" in d["image_path"]):
            prepositions.append("on" if subset == "A" else "in-front_of")
        else:
            prepositions.append("under" if subset == "A" else "behind")
    prepositions = np.array(prepositions)
    out = {"individual": np.mean(correct_mask), "pair": pair_correct / (len(dataset) / 2),
           "set": set_correct / (len(dataset) / 4)}
    out.update({p: correct_mask[prepositions == p].mean() for p in np.unique(prepositions)})
    return out


def official_qa(dataset, subset, scores):
    """``COCO_QA.evaluate_scores`` / ``VG_QA.evaluate_scores``: accuracy and per-preposition records."""
    correct_mask = np.argmax(np.squeeze(scores, axis=1), axis=-1) == 0
    if subset.endswith("one_obj"):
        prepositions = [d[1].split()[-1] for d in dataset]
    else:
        prepositions = []
        for d in dataset:
            if "left of" in d[1]:
                prepositions.append("left")
            elif "right of" in d[1]:
                prepositions.append("right")
            elif subset.startswith("coco"):
                prepositions.append("above" if "above" in d[1] else "below")
            elif "front of" in d[1]:
                prepositions.append("front")
            else:
                prepositions.append("behind" if "behind" in d[1] else "top")
    prepositions = np.array(prepositions)
    out = {"individual": np.mean(correct_mask)}
    out.update({p: correct_mask[prepositions == p].mean() for p in np.unique(prepositions)})
    return out


def expected_metrics(model, processor, root):
    expected = {}
    for subset, annotation, folder in (("A", "controlled_images_dataset.json", "controlled_images"),
                                       ("B", "controlled_clevr_dataset.json", "controlled_clevr")):
        dataset = json.loads((root / annotation).read_text())
        paths = [root / folder / d["image_path"].split("/")[-1] for d in dataset]
        scores = official_scores(model, processor, paths, [d["caption_options"] for d in dataset])
        name = f"controlled_images_{subset.lower()}"
        for key, value in official_controlled(root, annotation, folder, subset, scores).items():
            expected[f"{name}/{key}"] = value
    for name in ("coco_qa_one_obj", "coco_qa_two_obj", "vg_qa_one_obj", "vg_qa_two_obj"):
        dataset = json.loads((root / f"{name}.json").read_text())
        if name.startswith("coco"):
            paths = [root / "val2017" / f"{str(d[0]).zfill(12)}.jpg" for d in dataset]
        else:
            paths = [root / "vg_images" / f"{d[0]}.jpg" for d in dataset]
        scores = official_scores(model, processor, paths, [[d[1], d[2]] for d in dataset])
        for key, value in official_qa(dataset, name, scores).items():
            expected[f"{name}/{key}"] = value
    return expected


def test_whatsup_follows_the_official_code(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    root = make_whatsup(tmp_path / "whatsup_vlms" / "data")
    result = load_benchmark("whatsup", tmp_path / "whatsup_vlms").run(
        CLIPEncoder(model, processor, batch_size=8, progress=False))
    expected = expected_metrics(model, processor, root)
    macro = {k: v for k, v in result.metrics.items() if k.split("/")[0] in ("whatsup", "coco_spatial", "gqa_spatial")}
    assert set(result.metrics) - set(macro) == set(expected)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value), key
    # The tied set of Controlled-A (four identical options per image) is right: np.argmax picks the first option.
    assert result.metrics["controlled_images_a/set"] >= 1 / 3 and result.metrics["controlled_images_a/pair"] >= 2 / 6
    for key in ("individual", "pair", "set"):
        assert macro[f"whatsup/{key}"] == pytest.approx(
            np.mean([expected[f"controlled_images_a/{key}"], expected[f"controlled_images_b/{key}"]]))
    assert macro["coco_spatial/individual"] == pytest.approx(
        np.mean([expected["coco_qa_one_obj/individual"], expected["coco_qa_two_obj/individual"]]))
    assert macro["gqa_spatial/individual"] == pytest.approx(
        np.mean([expected["vg_qa_one_obj/individual"], expected["vg_qa_two_obj/individual"]]))
    assert result.num_items == result.num_scored == 12 + 8 + 4 * 3


def test_the_scoring_functions_take_the_first_maximum_and_count_pairs_and_sets():
    assert first_option_correct([[0.3, 0.3], [0.2, 0.5], [0.4, 0.1]]).tolist() == [True, False, True]
    assert first_option_correct([[0.1, 0.1, 0.1, 0.1], [0.1, 0.2, 0.2, 0.0]]).tolist() == [True, False]
    paths = [f"data/controlled_images/mug_{p}_table.jpeg" for p in ("left_of", "right_of", "on", "under")]
    paths += [f"data/controlled_images/cup_{p}_box.jpeg" for p in ("left_of", "right_of", "on", "under")]
    correct = [True, True, True, False, True, True, True, True]
    assert controlled_accuracies(correct, paths, "controlled_images_a") == {
        "individual": 7 / 8, "pair": 3 / 4, "set": 1 / 2}
    # An incomplete set: the official denominators stay items / 2 and items / 4, not counts of sets.
    assert controlled_accuracies([True] * 6, paths[:6], "controlled_images_a") == pytest.approx({
        "individual": 1.0, "pair": (2 + 1) / 3, "set": 1 / 1.5})


def test_only_the_subsets_present_are_scored_and_macro_averages_need_both(tmp_path, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    root = make_whatsup(tmp_path / "data")
    for name in ("controlled_clevr_dataset.json", "coco_qa_two_obj.json", "vg_qa_one_obj.json", "vg_qa_two_obj.json"):
        (root / name).unlink()
    shutil.move(root / "val2017", tmp_path / "coco-val2017")  # COCO images elsewhere: --images
    result = load_benchmark("whatsup", root, BenchmarkOptions(images=tmp_path / "coco-val2017")).run(
        CLIPEncoder(model, processor, progress=False))
    assert {k.split("/")[0] for k in result.metrics} == {"controlled_images_a", "coco_qa_one_obj"}
    assert result.num_items == 12 + 3


@pytest.mark.parametrize("case, message", [
    ("empty", "holds none of What'sUp's files"),
    ("no controlled images", "extract the official controlled_images images"),
    ("no coco images", "--images DIR"),
    ("file names", "<object>_<preposition>_<object>.jpeg"),
    ("qa format", "expected a list of lists [image_id, right caption, wrong caption]"),
    ("option counts", "the same number of caption_options"),
])
def test_a_malformed_folder_says_what_to_fix(tmp_path, case, message):
    root = make_whatsup(tmp_path / "data") if case != "empty" else tmp_path / "data"
    root.mkdir(exist_ok=True)
    if case == "no controlled images":
        shutil.rmtree(root / "controlled_images")
    elif case == "no coco images":
        shutil.rmtree(root / "val2017")
    elif case == "file names":
        items = json.loads((root / "controlled_clevr_dataset.json").read_text())
        items[3]["image_path"] = "data/controlled_clevr/cube-in-front-of-sphere.jpeg"
        (root / "controlled_clevr_dataset.json").write_text(json.dumps(items))
    elif case == "qa format":
        (root / "vg_qa_two_obj.json").write_text(json.dumps([{"image_id": 1, "caption": "a bag behind a chair"}]))
    elif case == "option counts":
        items = json.loads((root / "controlled_images_dataset.json").read_text())
        items[0]["caption_options"] = items[0]["caption_options"][:2]
        (root / "controlled_images_dataset.json").write_text(json.dumps(items))
    with pytest.raises(EvaluationInputError) as error:
        load_benchmark("whatsup", root)
    assert message in str(error.value)
