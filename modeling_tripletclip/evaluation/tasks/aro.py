"""ARO (Yuksekgonul et al., ICLR 2023, "When and why vision-language models behave like bags-of-words"): VG-Relation and
VG-Attribution, a Visual Genome image cropped to a box with a true caption and its swapped false caption.

**Data**: the folder the official code downloads: ``visual_genome_relation.json`` and / or
``visual_genome_attribution.json`` (lists of ``image_path``, ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h``,
``true_caption``, ``false_caption``, and ``relation_name`` or ``attributes``) with ``images/``. COCO-Order and
Flickr30k-Order (captions perturbed by the official code with spaCy) are not read here.

**Scoring** follows ``dataset_zoo/aro_datasets.py`` (``VG_Relation.evaluate_scores``,
``VG_Attribution.evaluate_scores``) and the aggregates of ``notebooks/Replicate ARO! VG-Relation,
VG-Attribution.ipynb``: each image is cropped to its box; the prediction is the argmax over [false caption, true
caption], so an exact tie picks the false one (wrong); accuracy per relation and per attribute pair (``"<a>_<b>"``; only pairs with at least 25 items); ``macro_accuracy`` is the mean
over relations leaving out the notebook's 157 relations listed as symmetric (:data:`SYMMETRIC_RELATIONS`), and the
mean over the kept attribute pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ...encoding import CLIPEncoder, image_source_from_value
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _skipped

RELATION_FILE = "visual_genome_relation.json"
ATTRIBUTION_FILE = "visual_genome_attribution.json"
MIN_ATTRIBUTE_COUNT = 25
CHUNK = 256

#: The relations the official notebook leaves out of VG-Relation's macro accuracy (the data of ARO's notebook).
SYMMETRIC_RELATIONS = frozenset([
    'adjusting', 'attached to', 'between', 'bigger than', 'biting', 'boarding', 'brushing', 'chewing', 'cleaning',
    'climbing', 'close to', 'coming from', 'coming out of', 'contain', 'crossing', 'dragging', 'draped over',
    'drinking', 'drinking from', 'driving', 'driving down', 'driving on', 'eating from', 'eating in', 'enclosing',
    'exiting', 'facing', 'filled with', 'floating in', 'floating on', 'flying', 'flying above', 'flying in',
    'flying over', 'flying through', 'full of', 'going down', 'going into', 'going through', 'grazing in',
    'growing in', 'growing on', 'guiding', 'hanging from', 'hanging in', 'hanging off', 'hanging over',
    'higher than', 'holding onto', 'hugging', 'in between', 'jumping off', 'jumping on', 'jumping over', 'kept in',
    'larger than', 'leading', 'leaning over', 'leaving', 'licking', 'longer than', 'looking in', 'looking into',
    'looking out', 'looking over', 'looking through', 'lying next to', 'lying on top of', 'making', 'mixed with',
    'mounted on', 'moving', 'on the back of', 'on the edge of', 'on the front of', 'on the other side of',
    'opening', 'painted on', 'parked at', 'parked beside', 'parked by', 'parked in', 'parked in front of',
    'parked near', 'parked next to', 'perched on', 'petting', 'piled on', 'playing', 'playing in', 'playing on',
    'playing with', 'pouring', 'reaching for', 'reading', 'reflected on', 'riding on', 'running in', 'running on',
    'running through', 'seen through', 'sitting behind', 'sitting beside', 'sitting by', 'sitting in front of',
    'sitting near', 'sitting next to', 'sitting under', 'skiing down', 'skiing on', 'sleeping in', 'sleeping on',
    'smiling at', 'sniffing', 'splashing', 'sprinkled on', 'stacked on', 'standing against', 'standing around',
    'standing behind', 'standing beside', 'standing in front of', 'standing near', 'standing next to', 'staring at',
    'stuck in', 'surrounding', 'swimming in', 'swinging', 'talking to', 'topped with', 'touching', 'traveling down',
    'traveling on', 'tying', 'typing on', 'underneath', 'wading in', 'waiting for', 'walking across', 'walking by',
    'walking down', 'walking next to', 'walking through', 'working in', 'working on', 'worn on', 'wrapped around',
    'wrapped in', 'by', 'of', 'near', 'next to', 'with', 'beside', 'on the side of', 'around',
])


def _read(path: Path, key: str) -> list[dict]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from error
    needed = ("image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "true_caption", "false_caption", key)
    if not isinstance(items, list) or any(not isinstance(i, dict) or any(k not in i for k in needed) for i in items):
        raise EvaluationInputError(f"{path} is not an ARO file: expected a list of objects with {', '.join(needed)}.")
    return items


class AROBenchmark(Benchmark):
    """ARO's VG-Relation and VG-Attribution accuracies, per relation / attribute pair and macro-averaged."""

    name = "aro"
    card = ("Compositional image-text matching", "aro", "ARO")
    folder_names = ("aro", "ARO")
    headline = "vg_relation/macro_accuracy"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        root = Path(str(data))
        self.images = Path(self.options.images) if self.options.images else root / "images"
        self.parts = {}
        if (root / RELATION_FILE).is_file():
            self.parts["vg_relation"] = (_read(root / RELATION_FILE, "relation_name"), "relation_name")
        if (root / ATTRIBUTION_FILE).is_file():
            self.parts["vg_attribution"] = (_read(root / ATTRIBUTION_FILE, "attributes"), "attributes")
        if not self.parts:
            raise EvaluationInputError(f"{root} holds neither {RELATION_FILE} nor {ATTRIBUTION_FILE}: give the folder "
                                       f"of ARO's VG-Relation / VG-Attribution files (with images/ beside them).")
        if self.options.max_items:
            self.parts = {k: (items[: self.options.max_items], key) for k, (items, key) in self.parts.items()}
        missing = sorted({i["image_path"] for items, _ in self.parts.values() for i in items
                          if not (self.images / i["image_path"]).is_file()})
        if missing:
            raise EvaluationInputError(f"{len(missing)} ARO image(s) are not in {self.images}, e.g. {missing[0]}. Pass "
                                       f"the folder of the Visual Genome images with --images.")

    def _crops(self, items: list[dict], start: int):
        sources = []
        for j, item in enumerate(items):
            with Image.open(self.images / item["image_path"]) as image:
                box = (item["bbox_x"], item["bbox_y"], item["bbox_x"] + item["bbox_w"], item["bbox_y"] + item["bbox_h"])
                crop = image.convert("RGB").crop(box)
            sources.append(image_source_from_value(crop, f"{item['image_path']} (item {start + j})"))
        return sources

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        metrics, notes, skipped, total, scored = {}, [], {}, 0, 0
        for part, (items, key) in self.parts.items():
            correct, groups = [], []
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                sources = self._crops(chunk, start)
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped)
                true = encoder.encode_texts([i["true_caption"] for i in chunk], progress=False)
                false = encoder.encode_texts([i["false_caption"] for i in chunk], progress=False)
                options = np.stack([(images * false).sum(-1).numpy(), (images * true).sum(-1).numpy()], axis=1)
                for item, scores, good in zip(chunk, options, ok.tolist()):
                    if good:
                        correct.append(int(np.argmax(scores)) == 1)  # np.argmax: a tie picks the false caption
                        groups.append(item[key] if key == "relation_name" else f"{item[key][0]}_{item[key][1]}")
            total += len(items)
            scored += len(correct)
            correct_arr, groups_arr = np.array(correct), np.array(groups, dtype=object)
            kept = []
            for group in sorted(set(groups)):
                mask = groups_arr == group
                if key == "attributes" and mask.sum() < MIN_ATTRIBUTE_COUNT:
                    continue
                metrics[f"{part}/{group}"] = float(correct_arr[mask].mean())
                if key == "attributes" or group not in SYMMETRIC_RELATIONS:
                    kept.append(metrics[f"{part}/{group}"])
            if kept:
                metrics[f"{part}/macro_accuracy"] = float(np.mean(kept))
        notes.append("aro: macro_accuracy as ARO's notebook (VG-Relation without its symmetric relations; "
                     "VG-Attribution over pairs with at least 25 items); a tie picks the false caption.")
        return BenchmarkResult(metrics, num_items=total, num_scored=scored, skipped_images=skipped, notes=notes)
