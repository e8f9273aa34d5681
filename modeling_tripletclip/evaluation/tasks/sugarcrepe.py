"""SugarCrepe (Hsieh et al., 2023): for each item an image, its caption and a hard-negative caption, in seven
subsets (replace / swap / add of objects, attributes, relations).

**Data**: the seven official JSON files ``{key: {"filename", "caption", "negative_caption"}}`` (keys are not
contiguous) in a folder, or one of them alone, plus a folder with the images they name (COCO val2017, or
``<data>/images`` in the built-in world).

**Scoring** follows SugarCrepe's ``main_eval.py`` (``evaluate``): an item is correct when the image scores strictly
higher with its caption than with the negative caption (a tie is wrong); a subset's accuracy is correct items / items;
replace / swap / add are the means of their subsets; the three "overall" numbers of the literature are reported by
name (`metrics.SUGARCREPE_OVERALL_DEFINITION`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dataset_builders.rows import caption_skip_reason, decode_text
from dataset_builders.sugarcrepe import read_sugarcrepe_subset, sugarcrepe_subsets

from ...encoding import CLIPEncoder, image_source_from_file
from ..errors import EvaluationInputError
from ..metrics import SUGARCREPE_OVERALL_DEFINITION, sugarcrepe_accuracy, sugarcrepe_summary
from .base import Benchmark, BenchmarkResult, _image_reason, _skipped

logger = logging.getLogger(__name__)


# Reading ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SugarCrepeItem:
    """One SugarCrepe item: an image file with its caption and negative caption."""

    subset: str
    key: str
    image_path: Path
    caption: str
    negative_caption: str
    skip_reason: str | None = None  # a caption that cannot be read: the item is skipped and counted


def find_sugarcrepe_images(data_dir: Path, images: str | Path | None) -> Path:
    """The folder of SugarCrepe images: ``images`` when given, else ``<data_dir>/images``."""
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise EvaluationInputError(
                f"The SugarCrepe image folder {folder} does not exist. Pass the folder holding the images the JSON "
                "files name with --images DIR (images= in Python)."
            )
        return folder
    folder = data_dir / "images"
    if not folder.is_dir():
        raise EvaluationInputError(
            f"No image folder for the SugarCrepe files in {data_dir}: {folder} does not exist. Pass the folder of "
            "the images the JSON files name (COCO val2017 for the official SugarCrepe) with --images DIR (images= in "
            "Python)."
        )
    return folder


def load_sugarcrepe(
    data_dir: str | Path, images: str | Path | None = None, subsets: Sequence[str] | None = None
) -> dict[str, list[SugarCrepeItem]]:
    """Read SugarCrepe's annotation files and check that every image they name exists.

    Args:
        data_dir: folder holding ``<subset>.json`` for the subsets (any of :data:`NEGATIVE_KINDS`).
        images: folder of the images; defaults to ``<data_dir>/images``.
        subsets: the subsets to read; defaults to every subset file present.

    Returns:
        ``{subset: [items]}`` in file order (the keys of a file need not be contiguous).

    Raises:
        EvaluationInputError: no subset file, a malformed file or item, or images missing from the folder (the
            message names the files).
    """
    data_dir, subsets = sugarcrepe_subsets(data_dir, subsets)
    image_dir = find_sugarcrepe_images(data_dir, images)

    result: dict[str, list[SugarCrepeItem]] = {}
    missing: dict[str, str] = {}
    for subset in subsets:
        path = data_dir / f"{subset}.json"
        items = []
        for key, value in read_sugarcrepe_subset(path).items():
            image_path = image_dir / value["filename"]
            if value["filename"] not in missing and not image_path.is_file():
                missing[value["filename"]] = f"{path.name}[{key!r}]"
            caption, problem = decode_text(value["caption"])
            negative, negative_problem = decode_text(value["negative_caption"])
            reason = (caption_skip_reason(problem) if problem else
                      caption_skip_reason(negative_problem, negative=True) if negative_problem else None)
            items.append(SugarCrepeItem(subset, str(key), image_path, caption or "", negative or "", reason))
        result[subset] = items
    if missing:
        shown = ", ".join(f"{name} (named by {where})" for name, where in list(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EvaluationInputError(
            f"{len(missing)} image file(s) named by the SugarCrepe JSON are not in {image_dir}: {shown}{more}. "
            "Point --images at the folder that holds them (COCO val2017 for the official SugarCrepe)."
        )
    return result



# Scoring ---------------------------------------------------------------------------------------------------------


class SugarCrepeBenchmark(Benchmark):
    """SugarCrepe: per-subset accuracy (ties wrong), the replace/swap/add averages and the overall average."""

    name = "sugarcrepe"
    card = ("Compositional image-text matching", "sugarcrepe", "SugarCrepe")
    world_card = ("SugarCrepe-format held-out set of the TripletCLIP procedural world", "tripletclip-world-sugarcrepe")
    folder_names = ("sugarcrepe", "SugarCrepe", "sugar-crepe")
    headline = "overall"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.items = load_sugarcrepe(data, images=self.options.images)
        if self.options.max_items:
            self.items = {s: items[: self.options.max_items] for s, items in self.items.items()}

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        all_items = [item for items in self.items.values() for item in items]
        paths = list(dict.fromkeys(item.image_path for item in all_items))
        sources = [image_source_from_file(p) for p in paths]
        image_embeddings, ok = encoder.encode_images(sources, desc="SugarCrepe images")
        texts = list(dict.fromkeys(t for item in all_items if item.skip_reason is None
                                   for t in (item.caption, item.negative_caption)))
        text_embeddings = encoder.encode_texts(texts, desc="SugarCrepe captions")
        image_row = {p: i for i, p in enumerate(paths)}
        text_row = {t: i for i, t in enumerate(texts)}

        accuracies, details, scored, skipped, subsets = {}, {}, 0, {}, {}
        reasons: Counter = Counter()
        _skipped(encoder, sources, ok, skipped)
        for subset, items in self.items.items():
            images = torch.tensor([image_row[item.image_path] for item in items], dtype=torch.long)
            keep = ok[images] & torch.tensor([item.skip_reason is None for item in items], dtype=torch.bool)
            for item, good in zip(items, ok[images].tolist()):
                if item.skip_reason is not None:
                    reasons[item.skip_reason] += 1
                elif not good:
                    reasons[_image_reason(encoder, sources[image_row[item.image_path]])] += 1
            images = images[keep]
            kept = [item for item, k in zip(items, keep.tolist()) if k]
            subsets[subset] = {"items": len(items), "scored": len(kept), "skipped": len(items) - len(kept)}
            if not kept:
                logger.warning("SugarCrepe %s: no item has a decodable image; the subset is not scored.", subset)
                continue
            captions = torch.tensor([text_row[item.caption] for item in kept], dtype=torch.long)
            negatives = torch.tensor([text_row[item.negative_caption] for item in kept], dtype=torch.long)
            u = image_embeddings[images]
            positive = (u * text_embeddings[captions]).sum(-1)
            negative = (u * text_embeddings[negatives]).sum(-1)
            accuracies[subset] = sugarcrepe_accuracy(positive.numpy(), negative.numpy())
            details[f"{subset}/positive_scores"] = positive.numpy()
            details[f"{subset}/negative_scores"] = negative.numpy()
            scored += len(kept)
        notes = [f"SugarCrepe: {SUGARCREPE_OVERALL_DEFINITION}; replace/swap/add = mean of their subsets (the rule of "
                 f"SugarCrepe's eval.py: correct when the positive caption scores strictly higher; a tie is wrong)."]
        partial = [s for s, c in subsets.items() if c["skipped"]]
        if partial:
            notes.append(f"sugarcrepe: items skipped (unusable images or captions) in {', '.join(partial)}: those "
                         f"subsets and the averages over them are computed on the remaining items only.")
        return BenchmarkResult(
            metrics=sugarcrepe_summary(accuracies, {s: c["scored"] for s, c in subsets.items()}),
            num_items=len(all_items),
            num_scored=scored,
            skipped_images=skipped,
            subsets=subsets,
            details=details,
            notes=notes,
            skipped_reasons=reasons,
        )
