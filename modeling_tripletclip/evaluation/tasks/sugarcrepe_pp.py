"""SugarCrepe++ (Dumpala et al., 2024): for each image two positive captions, lexically different but equivalent, and
one hard negative, in five subsets (replace / swap of objects, attributes, relations).

**Data**: the repository's ``data/`` folder (``Sri-Harsha/scpp``): ``replace_att.json``, ``replace_obj.json``,
``replace_rel.json``, ``swap_att.json``, ``swap_obj.json``, each a list of ``{"id", "filename", "caption",
"caption2", "negative_caption"}``, with the COCO 2017 validation images they name (``--images``, default
``<data>/images``, else the ``images/`` folder beside ``data/``, as the repository's scripts expect); or the Hub id ``Aman-J/SugarCrepe_pp``, whose JSON files are downloaded
(`huggingface_hub.snapshot_download`, JSON only). SugarCrepe and SugarCrepe++ name the same COCO images: one run
encodes each once.

**Scoring** follows SugarCrepe++'s ``VLMs/test_Variants_CLIP.py`` (strict comparisons of cosine similarities, a tie is
wrong), per subset: ``ITT`` (image-to-text) = both positives closer to the image than the negative; ``TOT``
(text-only) = s(P1, P2) > s(P1, N) and s(P1, P2) > s(P2, N); ``ITT_P1`` / ``ITT_P2`` = one positive closer to the
image than the negative. ``ITT`` and ``TOT`` overall are the unweighted means of the five subsets (the paper reports
the subsets).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...encoding import CLIPEncoder, image_source_from_file
from .. import data as readers
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _skipped
from .sugarcrepe import find_sugarcrepe_images

SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
HUB_ID = "Aman-J/SugarCrepe_pp"
KEYS = ("filename", "caption", "caption2", "negative_caption")


def find_sugarcrepe_pp(value: str | Path) -> Path:
    """The folder holding the subset JSON files: ``value`` itself (or its ``data/``), or a Hub id's JSON files."""
    root = readers.local_copy(value, allow_patterns=["*.json"])
    for folder in (root, root / "data", *sorted(p.parent for p in root.rglob("replace_att.json"))):
        if any((folder / f"{s}.json").is_file() for s in SUBSETS):
            return folder
    found = sorted(p.name for p in root.rglob("*") if p.is_file())[:10] if root.is_dir() else []
    raise EvaluationInputError(
        f"{value} holds none of SugarCrepe++'s files ({', '.join(s + '.json' for s in SUBSETS)}); it holds "
        f"{found or 'nothing'}. Give the repository's data/ folder or the Hub id {HUB_ID}."
    )


def load_sugarcrepe_pp(value: str | Path) -> dict[str, list[dict]]:
    """``{subset: [item, ...]}`` for the subsets present, each item checked for SugarCrepe++'s keys."""
    folder = find_sugarcrepe_pp(value)
    subsets = {}
    for subset in SUBSETS:
        path = folder / f"{subset}.json"
        if not path.is_file():
            continue
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise EvaluationInputError(f"{path} is not valid JSON ({error}).") from error
        if not isinstance(items, list) or any(not isinstance(i, dict) or not all(k in i for k in KEYS) for i in items):
            raise EvaluationInputError(f"{path} is not a SugarCrepe++ file: expected a list of objects with "
                                       f"{', '.join(KEYS)}.")
        subsets[subset] = items
    return subsets


class SugarCrepePPBenchmark(Benchmark):
    """SugarCrepe++'s ITT and TOT accuracies (ties wrong), per subset and as the mean of the subsets."""

    name = "sugarcrepe_pp"
    card = ("Compositional image-text matching", "Aman-J/SugarCrepe_pp", "SugarCrepe++")
    folder_names = ("SugarCrepe_pp", "sugarcrepe_pp", "scpp")
    headline = "ITT"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.subsets = load_sugarcrepe_pp(data)
        if self.options.max_items:
            self.subsets = {s: items[: self.options.max_items] for s, items in self.subsets.items()}
        folder = find_sugarcrepe_pp(data)
        images = self.options.images
        if images is None and not (folder / "images").is_dir() and (folder.parent / "images").is_dir():
            images = folder.parent / "images"  # the repository's layout: data/ and images/ side by side
        self.images = find_sugarcrepe_images(folder, images)
        missing = sorted({i["filename"] for items in self.subsets.values() for i in items
                          if not (self.images / i["filename"]).is_file()})
        if missing:
            raise EvaluationInputError(f"{len(missing)} image(s) named by SugarCrepe++ are not in {self.images}, e.g. "
                                       f"{', '.join(missing[:3])}. Pass the COCO 2017 validation folder with --images.")

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        items = [i for subset in self.subsets.values() for i in subset]
        names = list(dict.fromkeys(i["filename"] for i in items))
        sources = [image_source_from_file(self.images / name) for name in names]
        images, ok = encoder.encode_images(sources, desc="SugarCrepe++ images")
        texts = list(dict.fromkeys(t for i in items for t in (i["caption"], i["caption2"], i["negative_caption"])))
        embeddings = encoder.encode_texts(texts, desc="SugarCrepe++ captions")
        image_row, text_row = {n: k for k, n in enumerate(names)}, {t: k for k, t in enumerate(texts)}
        metrics, counts, skipped, scored = {}, {}, {}, 0
        _skipped(encoder, sources, ok, skipped)
        for subset, rows in self.subsets.items():
            usable = [r for r in rows if ok[image_row[r["filename"]]]]
            counts[subset] = {"items": len(rows), "scored": len(usable), "skipped": len(rows) - len(usable)}
            if not usable:
                continue
            u = images[[image_row[r["filename"]] for r in usable]]
            p1, p2, n = (embeddings[[text_row[r[key]] for r in usable]]
                         for key in ("caption", "caption2", "negative_caption"))
            image_p1, image_p2, image_n = (u * p1).sum(-1), (u * p2).sum(-1), (u * n).sum(-1)
            p1p2, p1n, p2n = (p1 * p2).sum(-1), (p1 * n).sum(-1), (p2 * n).sum(-1)
            decisions = {"ITT": (image_p1 > image_n) & (image_p2 > image_n), "TOT": (p1p2 > p1n) & (p1p2 > p2n),
                         "ITT_P1": image_p1 > image_n, "ITT_P2": image_p2 > image_n}
            for name, correct in decisions.items():
                metrics[f"{subset}/{name}"] = float(correct.float().mean())
            scored += len(usable)
        present = [s for s in SUBSETS if f"{s}/ITT" in metrics]
        if not present:
            raise EvaluationInputError(f"No SugarCrepe++ item of {self.data!r} could be scored (no decodable image).")
        notes = []
        if len(present) == len(SUBSETS):
            metrics["ITT"] = float(np.mean([metrics[f"{s}/ITT"] for s in SUBSETS]))
            metrics["TOT"] = float(np.mean([metrics[f"{s}/TOT"] for s in SUBSETS]))
            notes.append("sugarcrepe_pp: ITT and TOT = unweighted means of the five subsets (strict comparisons, ties "
                         "wrong, as VLMs/test_Variants_CLIP.py).")
        else:
            notes.append(f"sugarcrepe_pp: only {', '.join(present)} present: no overall ITT / TOT.")
        return BenchmarkResult(metrics, num_items=len(items), num_scored=scored, skipped_images=skipped,
                               subsets=counts, notes=notes)
