"""What'sUp (Kamath et al., EMNLP 2023, "What's 'up' with vision-language models?"): an image and captions that differ
only in a spatial preposition. Controlled-A (photographs: on, under, left of, right of) and Controlled-B (CLEVR
renders: in front of, behind, left of, right of) give sets of four images of the same two objects; COCO-spatial and
GQA-spatial (the official code's ``COCO_QA`` and ``VG_QA``) give one- and two-object items with two captions.

**Data**: the ``data/`` folder the official code (``amitakamath/whatsup_vlms``) fills with ``--download``, or its
parent: ``controlled_images_dataset.json`` + ``controlled_images/`` (Controlled-A), ``controlled_clevr_dataset.json``
+ ``controlled_clevr/`` (Controlled-B), lists of ``{"image_path": "data/controlled_images/<obj>_<prep>_<obj>.jpeg",
"caption_options": [...]}`` (the image is read by its file name in the subset's folder); ``coco_qa_one_obj.json``,
``coco_qa_two_obj.json`` (lists of ``[image_id, right caption, wrong caption]``, images
``val2017/<image_id zero-padded to 12>.jpg``; ``--images`` names another COCO val2017 folder) and
``vg_qa_one_obj.json``, ``vg_qa_two_obj.json`` (the same, images ``vg_images/<image_id>.jpg``). The subsets whose JSON
is there are scored.

**Scoring** follows ``dataset_zoo/aro_datasets.py`` (``Controlled_Images.evaluate_scores``,
``COCO_QA.evaluate_scores``, ``VG_QA.evaluate_scores``) on the cosine similarities of
``model_zoo/clip_models.py`` (``get_retrieval_scores_batched``), as ``main_aro.py`` runs them: the first caption option
is always the right one; the prediction is ``np.argmax`` over the options, so an exact tie with the right caption
picks it (right). ``individual`` is the share of items right. For Controlled-A/B, an image set is keyed by the first
and last ``_``-fields of the image's file name (the last without its five characters ``.jpeg``) and its slot by the
second field (``left``, ``right``, ``on``, ``under`` / ``in-front``, ``behind``); ``pair`` = (sets with left and right
both right + sets with on and under (B: in-front and behind) both right) / (items / 2); ``set`` = sets with all four
right / (items / 4). Per preposition, the accuracy of the items grouped as the official code groups them (the image
path for Controlled-A/B; the caption's last word for one object; ``left``, ``right``, ``above``, else ``below`` for
COCO two objects; ``left``, ``right``, ``front``, ``behind``, else ``top`` for VG two objects). The README says its
individual, pair and set accuracies per subset are the paper's Table 3, and that Table 1 reports macro-averages over
Controlled-A and -B and over one- and two-object: ``whatsup/individual``, ``whatsup/pair``, ``whatsup/set`` (mean of
Controlled-A and -B), ``coco_spatial/individual`` and ``gqa_spatial/individual`` (mean of one- and two-object), each
reported only when both of its subsets were scored. The other metrics are ``<subset>/<metric>``, the subsets named as
``main_aro.py --dataset`` names them, lower-cased (``controlled_images_a``, ``coco_qa_one_obj``, ``vg_qa_two_obj``,
...). Followed as of the repository's commit 7c1f255. An image that cannot be decoded stops the run, as it does there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ...encoding import CLIPEncoder, image_source_from_file
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _skipped

#: The official datasets (``main_aro.py --dataset``, lower-cased): (annotation file, image folder).
SUBSETS: dict[str, tuple[str, str]] = {
    "controlled_images_a": ("controlled_images_dataset.json", "controlled_images"),
    "controlled_images_b": ("controlled_clevr_dataset.json", "controlled_clevr"),
    "coco_qa_one_obj": ("coco_qa_one_obj.json", "val2017"),
    "coco_qa_two_obj": ("coco_qa_two_obj.json", "val2017"),
    "vg_qa_one_obj": ("vg_qa_one_obj.json", "vg_images"),
    "vg_qa_two_obj": ("vg_qa_two_obj.json", "vg_images"),
}
CONTROLLED = ("controlled_images_a", "controlled_images_b")
#: The four slots of an image set, in ``Controlled_Images``'s ``eval_dict`` order: two pairs of opposites.
SET_SLOTS = {"controlled_images_a": ("left", "right", "on", "under"),
             "controlled_images_b": ("left", "right", "in-front", "behind")}
#: The paper's Table 1 columns, macro-averages of two subsets each, and the metrics averaged.
MACRO_AVERAGES = {"whatsup": (CONTROLLED, ("individual", "pair", "set")),
                  "coco_spatial": (("coco_qa_one_obj", "coco_qa_two_obj"), ("individual",)),
                  "gqa_spatial": (("vg_qa_one_obj", "vg_qa_two_obj"), ("individual",))}
#: How the official classes label an item's preposition (``all_prepositions``): ``(substring, label)`` tests on the
#: image path (Controlled) or the right caption (two objects), the first that holds wins (the last, an empty
#: substring, always holds). One-object items take the right caption's last word.
PREPOSITION_TESTS = {
    "controlled_images_a": (("left_of", "left_of"), ("right_of", "right_of"), ("_on_", "on"), ("", "under")),
    "controlled_images_b": (("left_of", "left_of"), ("right_of", "right_of"), ("_in-front_of_", "in-front_of"),
                            ("", "behind")),
    "coco_qa_two_obj": (("left of", "left"), ("right of", "right"), ("above", "above"), ("", "below")),
    "vg_qa_two_obj": (("left of", "left"), ("right of", "right"), ("front of", "front"), ("behind", "behind"),
                      ("", "top")),
}


# Scoring -------------------------------------------------------------------------------------------------------


def first_option_correct(scores) -> np.ndarray:
    """Whether each row's argmax is option 0 (the right caption). ``np.argmax`` takes the first maximum, so a tie
    with the right caption counts as right."""
    return np.argmax(np.asarray(scores), axis=-1) == 0


def set_key(image_path: str) -> tuple[str, str]:
    """The image set of a controlled image, as ``Controlled_Images`` keys it: the first and last ``_``-fields of the
    file name, the last without its last five characters (``.jpeg``)."""
    fields = image_path.split("/")[-1].split("_")
    return fields[0], fields[-1][:-5]


def set_slot(image_path: str) -> str:
    """The slot of a controlled image in its set: the second ``_``-field of its file name."""
    return image_path.split("/")[-1].split("_")[1]


def controlled_accuracies(correct: Sequence[bool], image_paths: Sequence[str], subset: str) -> dict[str, float]:
    """``individual``, ``pair`` and ``set`` accuracy of Controlled-A (``subset`` ``controlled_images_a``) or -B, as
    ``Controlled_Images.evaluate_scores`` computes them (fractions; its pair and set denominators are items / 2 and
    items / 4)."""
    correct = np.asarray(correct, dtype=bool)
    slots = SET_SLOTS[subset]
    sets: dict[tuple[str, str], dict[str, bool]] = {}
    for path in image_paths:
        sets.setdefault(set_key(path), dict.fromkeys(slots, False))
    for path, right in zip(image_paths, correct):
        sets[set_key(path)][set_slot(path)] = bool(right)
    pairs = sum(int(s[slots[0]] and s[slots[1]]) + int(s[slots[2]] and s[slots[3]]) for s in sets.values())
    full = sum(sum(s.values()) == 4 for s in sets.values())
    n = len(correct)
    return {"individual": float(correct.mean()), "pair": pairs / (n / 2), "set": full / (n / 4)}


def preposition_labels(subset: str, items: Sequence) -> list[str]:
    """Each item's preposition as the official dataset class groups them for its per-preposition accuracy."""
    if subset not in PREPOSITION_TESTS:
        return [item[1].split()[-1] for item in items]
    return [next(label for needle, label in PREPOSITION_TESTS[subset] if needle in _text(subset, item))
            for item in items]


def _text(subset: str, item) -> str:
    return item["image_path"] if subset in CONTROLLED else item[1]


def accuracy_by_label(correct: Sequence[bool], labels: Sequence[str]) -> dict[str, float]:
    """The accuracy of the items of each label (labels in sorted order, as ``np.unique`` gives them)."""
    correct, labels = np.asarray(correct, dtype=bool), np.asarray(labels, dtype=object)
    return {str(label): float(correct[labels == label].mean()) for label in sorted(set(labels.tolist()))}


def macro_averages(metrics: dict[str, float]) -> dict[str, float]:
    """Table 1's macro-averages of ``{"<subset>/<metric>": value}``, each where both its subsets were scored."""
    out = {}
    for name, (subsets, keys) in MACRO_AVERAGES.items():
        for key in keys:
            values = [metrics.get(f"{subset}/{key}") for subset in subsets]
            if all(v is not None for v in values):
                out[f"{name}/{key}"] = float(np.mean(values))
    return out


# Reading -------------------------------------------------------------------------------------------------------


def find_whatsup(value: str | Path) -> Path:
    """The folder holding What'sUp's annotation files (the official ``data/`` folder, or the folder above it)."""
    root = Path(str(value))
    for folder in (root, root / "data"):
        if any((folder / annotation).is_file() for annotation, _ in SUBSETS.values()):
            return folder
    raise EvaluationInputError(f"{root} holds none of What'sUp's files ({', '.join(a for a, _ in SUBSETS.values())})."
                               f" Give the data/ folder that amitakamath/whatsup_vlms fills with --download (the "
                               f"JSON files with controlled_images/, controlled_clevr/, val2017/, vg_images/).")


def read_subset(path: Path, subset: str) -> list:
    """The items of one annotation file, checked against the official format."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(items, list) or not items:
        raise EvaluationInputError(f"{path} is not a What'sUp file: expected a non-empty JSON list.")
    if subset in CONTROLLED:
        shape = 'objects {"image_path": str, "caption_options": [str, ...]}'
        good = all(isinstance(i, dict) and isinstance(i.get("image_path"), str)
                   and isinstance(i.get("caption_options"), list) and len(i["caption_options"]) >= 2
                   and all(isinstance(c, str) for c in i["caption_options"]) for i in items)
        if good and len({len(i["caption_options"]) for i in items}) > 1:
            raise EvaluationInputError(f"{path}: every item must have the same number of caption_options.")
    else:
        shape = "lists [image_id, right caption, wrong caption]"
        good = all(isinstance(i, list) and len(i) >= 3 and isinstance(i[1], str) and i[1].strip()
                   and isinstance(i[2], str) for i in items)
    if not good:
        raise EvaluationInputError(f"{path} is not a What'sUp file: expected a list of {shape}.")
    if subset in CONTROLLED:
        slots = SET_SLOTS[subset]
        bad = [i["image_path"] for i in items
               if len(PurePosixPath(i["image_path"]).name.split("_")) < 3 or set_slot(i["image_path"]) not in slots]
        if bad:
            raise EvaluationInputError(
                f"{path}: {len(bad)} image path(s) are not named <object>_<preposition>_<object>.jpeg with the "
                f"preposition one of {', '.join(slots)}, e.g. {bad[0]!r}; the image sets are read from these names. "
                f"Use the official {path.name}.")
    return items


class WhatsUpBenchmark(Benchmark):
    """What'sUp's individual, pair and set accuracies (Controlled-A/B), COCO- and GQA-spatial accuracies, per
    preposition, and the paper's macro-averages."""

    name = "whatsup"
    card = ("Spatial relation matching", "whatsup", "What'sUp")
    folder_names = ("whatsup", "WhatsUp", "whatsup_vlms")
    headline = "whatsup/individual"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.folder = find_whatsup(data)
        self.coco = Path(self.options.images) if self.options.images else self.folder / "val2017"
        self.parts: dict[str, list] = {}
        for subset, (annotation, _) in SUBSETS.items():
            if (self.folder / annotation).is_file():
                items = read_subset(self.folder / annotation, subset)
                self.parts[subset] = items[: self.options.max_items] if self.options.max_items else items
        for subset, items in self.parts.items():
            paths = self._paths(subset, items)
            missing = [p for p in paths if not p.is_file()]
            if missing:
                folder = missing[0].parent
                if subset.startswith("coco"):
                    how = f"pass the COCO 2017 validation images with --images DIR or put them in {self.folder}/val2017"
                else:
                    how = f"extract the official {folder.name} images into {folder}"
                raise EvaluationInputError(
                    f"{len(missing)} image(s) of What'sUp {subset} ({SUBSETS[subset][0]}) are not in {folder}, e.g. "
                    f"{missing[0].name}: {how}, or move {SUBSETS[subset][0]} away to leave that subset out.")

    def _paths(self, subset: str, items: list) -> list[Path]:
        if subset in CONTROLLED:
            return [self.folder / SUBSETS[subset][1] / PurePosixPath(i["image_path"]).name for i in items]
        if subset.startswith("coco"):
            return [self.coco / f"{str(i[0]).zfill(12)}.jpg" for i in items]
        return [self.folder / SUBSETS[subset][1] / f"{i[0]}.jpg" for i in items]

    @staticmethod
    def _captions(subset: str, items: list) -> list[list[str]]:
        return [list(i["caption_options"]) if subset in CONTROLLED else [i[1], i[2]] for i in items]

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        metrics, skipped, total = {}, {}, 0
        for subset, items in self.parts.items():
            sources = [image_source_from_file(p) for p in self._paths(subset, items)]
            images, ok = encoder.encode_images(sources, desc=f"What'sUp {subset}")
            _skipped(encoder, sources, ok, skipped)
            if skipped:
                raise EvaluationInputError(f"What'sUp images could not be decoded: {', '.join(list(skipped)[:3])}.")
            captions = self._captions(subset, items)
            texts = encoder.encode_texts([c for options in captions for c in options], progress=False)
            texts = texts.reshape(len(items), len(captions[0]), -1)
            correct = first_option_correct(torch.einsum("nd,nkd->nk", images, texts).numpy())
            if subset in CONTROLLED:
                part = controlled_accuracies(correct, [i["image_path"] for i in items], subset)
            else:
                part = {"individual": float(correct.mean())}
            part.update(accuracy_by_label(correct, preposition_labels(subset, items)))
            metrics.update({f"{subset}/{key}": value for key, value in part.items()})
            total += len(items)
        metrics.update(macro_averages(metrics))
        note = (f"whatsup: {', '.join(self.parts)}; argmax over the caption options, the first the right one (a tie "
                f"with it counts as right), as whatsup_vlms' dataset_zoo/aro_datasets.py; pair = both of a pair of "
                f"opposite prepositions right, / (items / 2); set = all four of an image set right, / (items / 4); "
                f"whatsup/*, coco_spatial/*, gqa_spatial/* = the paper's Table 1 macro-averages of two subsets, "
                f"where both were scored.")
        return BenchmarkResult(metrics, num_items=total, num_scored=total, notes=[note])
