"""SugarCrepe (Hsieh et al., 2023): for each item an image, its caption and a hard-negative caption, in seven
subsets (replace / swap / add of objects, attributes, relations).

**Data**, in either layout (both scored by the same rule):

- the seven official JSON files ``{key: {"filename", "caption", "negative_caption"}}`` (keys are not contiguous) in
  a folder, or one of them alone, plus a folder with the images they name (COCO val2017, or ``<data>/images`` in the
  built-in world);
- the mirror on the Hub with the images inside, one dataset per subset: ``HuggingFaceM4/SugarCrepe_<subset>`` (one
  subset), or ``HuggingFaceM4/SugarCrepe`` for all seven; or a local copy of those repositories (a folder
  ``SugarCrepe_<subset>`` holding ``data/test-*.parquet``, as ``hf download --repo-type dataset
  HuggingFaceM4/SugarCrepe_<subset> --local-dir DIR/SugarCrepe_<subset>`` writes it; or the folder ``DIR`` holding
  several of them). Split ``test``; columns ``image`` (an ``Image``: the COCO JPEG), ``tested_labels`` (the two
  captions) and ``true_label``. No COCO download is needed.

  ``true_label`` is a ``ClassLabel`` whose integer names the *text* of the right caption: its names are every
  caption of the seven subsets (``list(set(...))``), so the integer is no index into ``tested_labels``: it is decoded
  with the feature's names, which the mirror carries in its parquet metadata and in its card's ``dataset_info``.
  Source: the code that made the mirror and the code that reads it, both in ``huggingface/smollm``:
  ``vision/data/datasets_processing_scripts/create_evaluation_datasets/SugarCrepe/make_sugarcrepe.py``
  (``tested_labels = [caption, negative_caption]``, ``true_label = caption``,
  ``ClassLabel(names=list(set(all_tested_labels)))``) and
  ``vision/m4/models/vgpt2/evaluation_classification_in_context_vgpt2.py`` (each tested label mapped to its class
  integer with ``class_str2int`` and compared with ``true_label``). Here the right caption is the decoded
  ``true_label`` (a text ``true_label`` is taken as it is) and the other tested label is the negative; a row whose
  ``true_label`` is not one of its two tested labels is refused.

  **Item counts**: the official release has :data:`OFFICIAL_ITEMS` items per subset (7,511 in all). The mirror was
  made on 2023-08-24, before the official ``swap_obj.json`` dropped its key ``"108"`` (2023-11-18, an incorrect
  caption), so its swap_obj has 246 rows (the Hub's viewer) against 245. A mirror subset whose row count differs from
  the official release is scored as it is and the result says so in a note ("mirror has N items, official release has
  M"): it is never presented as the official benchmark.

**Scoring** follows SugarCrepe's ``main_eval.py`` (``evaluate``): an item is correct when the image scores strictly
higher with its caption than with the negative caption (a tie is wrong); a subset's accuracy is correct items / items;
replace / swap / add are the means of their subsets; the three "overall" numbers of the literature are reported by
name (`metrics.SUGARCREPE_OVERALL_DEFINITION`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from dataset_builders.rows import caption_skip_reason, decode_text
from dataset_builders.sugarcrepe import is_sugarcrepe, read_sugarcrepe_subset, sugarcrepe_subsets
from dataset_builders.synthesis.rules import NEGATIVE_KINDS

from ...encoding import CLIPEncoder, image_source_from_file, image_source_from_value
from .. import data as readers
from ..errors import EvaluationInputError
from ..metrics import SUGARCREPE_OVERALL_DEFINITION, sugarcrepe_accuracy, sugarcrepe_summary
from .base import Benchmark, BenchmarkResult, _chunks, _image_reason, _skipped

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



# The HuggingFaceM4 mirror ----------------------------------------------------------------------------------------

MIRROR_PREFIX = "HuggingFaceM4/SugarCrepe"
"""The mirror's datasets are ``<MIRROR_PREFIX>_<subset>``; the prefix alone names all seven."""
MIRROR_COLUMNS = ("image", "tested_labels", "true_label")
OFFICIAL_ITEMS: dict[str, int] = {"replace_obj": 1652, "replace_att": 788, "replace_rel": 1406, "swap_obj": 245,
                                  "swap_att": 666, "add_obj": 2062, "add_att": 692}
"""Items per subset of the official release (``RAIVNLab/sugar-crepe``, ``data/<subset>.json``): 7,511 in all."""
REMOVED_UPSTREAM: dict[str, tuple[str, str]] = {
    "swap_obj": ("A West 32nd sign under a Korea Way road sign.", "A Korea Way sign under a West 32nd road sign."),
}
"""(caption, negative caption) of the item the official files dropped after the mirror was made (swap_obj key "108",
000000310622.jpg, removed on 2023-11-18 as an incorrect caption); a mirror that still has it is named in the note."""
_MIRROR_ID = re.compile(re.escape(MIRROR_PREFIX) + r"(?:_(?P<subset>[A-Za-z_*]+))?", re.IGNORECASE)


def mirror_id(subset: str) -> str:
    """The Hub id of one subset's mirror."""
    return f"{MIRROR_PREFIX}_{subset}"


def _has_parquet(folder: Path) -> bool:
    return any(folder.glob("data/*.parquet")) or any(folder.glob("*.parquet"))


def _subset_in_path(path: Path) -> str | None:
    """The subset a local copy of one mirror holds, from its folder names (``SugarCrepe_<subset>``, ``<subset>``,
    or the Hub cache's ``datasets--HuggingFaceM4--SugarCrepe_<subset>``), the innermost first."""
    for part in reversed(Path(os.path.abspath(path)).parts):
        for subset in NEGATIVE_KINDS:
            if part.lower() == subset or part.lower().endswith(f"sugarcrepe_{subset}"):
                return subset
    return None


def find_sugarcrepe_mirror(value: str | Path) -> dict[str, str] | None:
    """``{subset: Hub id or local path}`` when ``value`` names the HuggingFaceM4 mirror, else None (then ``value`` is
    read as the official JSON files).

    ``value`` may be a mirror's Hub id, the prefix ``HuggingFaceM4/SugarCrepe`` (all seven), a local copy of one
    mirror (a folder with ``data/*.parquet``, or one parquet file, below a folder named after its subset), or a folder
    holding several copies, each in ``SugarCrepe_<subset>`` (or ``<subset>``).

    Raises:
        EvaluationInputError: a mirror id with an unknown subset, or a copy whose subset its folder names do not tell.
    """
    text = os.fspath(value)
    path = Path(text).expanduser()
    match = _MIRROR_ID.fullmatch(text)
    if match and not path.exists():
        subset = match.group("subset")
        if subset in (None, "*"):
            return {s: mirror_id(s) for s in NEGATIVE_KINDS}
        if subset.lower() not in NEGATIVE_KINDS:
            raise EvaluationInputError(
                f"{text} is not one of the SugarCrepe mirrors: give {MIRROR_PREFIX} (all seven) or one of "
                f"{', '.join(mirror_id(s) for s in NEGATIVE_KINDS)}."
            )
        return {subset.lower(): mirror_id(subset.lower())}
    if not path.exists() or is_sugarcrepe(path):
        return None
    if path.is_file() and path.suffix == ".parquet" or path.is_dir() and _has_parquet(path):
        subset = _subset_in_path(path)
        if subset is None:
            raise EvaluationInputError(
                f"{path} holds parquet files but its folder names do not say which SugarCrepe subset they are (the "
                f"mirror's rows do not name it). Keep the folder name of the download (`hf download --repo-type "
                f"dataset {mirror_id('<subset>')} --local-dir DIR/SugarCrepe_<subset>`), or give the Hub id."
            )
        return {subset: str(path)}
    if not path.is_dir():
        return None
    found = {}
    for subset in NEGATIVE_KINDS:
        folder = next((path / name for name in (f"SugarCrepe_{subset}", subset)
                       if (path / name).is_dir() and _has_parquet(path / name)), None)
        if folder is not None:
            found[subset] = str(folder)
    return found or None


def mirror_captions(tested_labels: Any, true_label: Any, names: Sequence[str] | None, where: str) -> tuple[Any, Any]:
    """``(caption, negative caption)`` of one mirror row, as stored: the decoded ``true_label`` and the other label.

    Args:
        tested_labels: the row's two captions.
        true_label: the row's ``true_label``: a class integer when ``names`` (the ``ClassLabel``'s names) is given,
            else the caption's text.
        names: the names of the ``true_label`` feature, or None when it holds text.
        where: the row, for messages.

    Raises:
        EvaluationInputError: not two tested labels, a class integer out of range, or a ``true_label`` that is neither
            tested label.
    """
    if not isinstance(tested_labels, (list, tuple)) or len(tested_labels) != 2:
        raise EvaluationInputError(
            f"{where}: tested_labels must hold the caption and its negative caption, it holds {tested_labels!r}. "
            f"Give an unmodified copy of the mirror ({MIRROR_PREFIX}_<subset>)."
        )
    if names is not None:
        if isinstance(true_label, bool) or not isinstance(true_label, (int, np.integer)) or \
                not 0 <= true_label < len(names):
            raise EvaluationInputError(
                f"{where}: true_label {true_label!r} is not one of the {len(names)} classes of its ClassLabel. Give "
                f"an unmodified copy of the mirror ({MIRROR_PREFIX}_<subset>)."
            )
        true_label = names[int(true_label)]
    first, second = tested_labels
    if true_label == first:
        return first, second
    if true_label == second:
        return second, first
    raise EvaluationInputError(
        f"{where}: true_label {true_label!r} is neither of its tested_labels {list(tested_labels)!r}, so the right "
        f"caption is unknown. Give an unmodified copy of the mirror ({MIRROR_PREFIX}_<subset>)."
    )


def mirror_count_note(subset: str, source: str, rows: int) -> str | None:
    """The note a mirror subset needs when its item count differs from the official release's; None when equal."""
    official = OFFICIAL_ITEMS[subset]
    if rows == official:
        return None
    return (f"sugarcrepe: {subset}: mirror has {rows} items, official release has {official} ({source}; official: "
            f"RAIVNLab/sugar-crepe data/{subset}.json): its {subset} accuracy and the averages over it are not the "
            f"official benchmark's.")


@dataclass
class MirrorSubset:
    """One subset of the mirror, opened and checked.

    Attributes:
        subset: its name; source: its Hub id or local path.
        dataset: the ``test`` split, images undecoded (a stream with ``--streaming``).
        names: the ``true_label`` ClassLabel's names (None when ``true_label`` holds the caption's text).
        rows: its row count (None for a stream: counted while it is read).
    """

    subset: str
    source: str
    dataset: Any
    names: list[str] | None
    rows: int | None


def open_mirror_subset(subset: str, source: str, split: str | None = None, streaming: bool = False) -> MirrorSubset:
    """Open one mirror subset and check its columns and, unless streamed, every row's captions (before any model
    runs)."""
    dataset, _ = readers.open_dataset(source, split=split, streaming=streaming, what=f"SugarCrepe mirror {source}")
    readers.require_columns(dataset, MIRROR_COLUMNS, "SugarCrepe mirror", source)
    feature = dataset.features["true_label"] if dataset.features is not None else None
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    elif feature is None or isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        names = None
    else:
        raise EvaluationInputError(
            f"The true_label column of {source} is {feature}, without the ClassLabel names that tell which caption "
            f"its integers are. Read the mirror by its Hub id ({mirror_id(subset)}) or from an unmodified copy "
            f"(`hf download --repo-type dataset {mirror_id(subset)} --local-dir DIR/SugarCrepe_{subset}`): its "
            f"parquet files and card carry the names."
        )
    dataset = readers.undecoded_images(dataset, ["image"])
    rows = None
    if not streaming:
        rows = len(dataset)
        texts = dataset.select_columns(["tested_labels", "true_label"])
        for start, batch in _chunks(texts, 1024, None):
            for j, (tested, true) in enumerate(zip(batch["tested_labels"], batch["true_label"])):
                mirror_captions(tested, true, names, f"{source}, row {start + j}")
    return MirrorSubset(subset, source, dataset, names, rows)


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
        self.items: dict[str, list[SugarCrepeItem]] = {}
        self.mirror: dict[str, MirrorSubset] = {}
        sources = find_sugarcrepe_mirror(data)
        if sources is not None:
            # Images inside: an --images folder (the compositional suite's COCO folder) is not needed.
            self.mirror = {subset: open_mirror_subset(subset, source, split=self.options.split,
                                                      streaming=self.options.streaming)
                           for subset, source in sources.items()}
            return
        if not Path(data).exists():
            raise EvaluationInputError(
                f"No SugarCrepe data at {data}: give the folder of the seven official JSON files (or one of them) "
                f"with the COCO val2017 images (--images), or the mirror with the images inside: {MIRROR_PREFIX} "
                f"(all seven), {mirror_id('<subset>')}, or a local copy of them."
            )
        self.items = load_sugarcrepe(data, images=self.options.images)
        if self.options.max_items:
            self.items = {s: items[: self.options.max_items] for s, items in self.items.items()}

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        if self.mirror:
            return self._run_mirror(encoder)
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
        return _result(accuracies, details, subsets, skipped, reasons, len(all_items), scored, [])

    def _run_mirror(self, encoder: CLIPEncoder) -> BenchmarkResult:
        """Score the mirror chunk by chunk (images read as they are encoded; the same image in several rows or
        subsets, the same bytes, is encoded once)."""
        accuracies, details, scored, total, skipped, subsets = {}, {}, 0, 0, {}, {}
        reasons: Counter = Counter()
        sources = ", ".join(part.source for part in self.mirror.values())
        notes = [(f"sugarcrepe: read from the HuggingFaceM4 mirror ({sources}): images from its image column, the "
                  f"right caption its true_label (a ClassLabel decoded to the caption's text), the other tested label "
                  f"the negative caption.")]
        for subset, part in self.mirror.items():
            positive_scores, negative_scores, rows, kept_rows, removed = [], [], 0, 0, False
            limit = self.options.max_items
            expected = min(part.rows, limit) if part.rows is not None and limit else (part.rows or limit)
            with tqdm(total=expected, desc=f"SugarCrepe {subset}", unit="item", disable=not encoder.progress) as bar:
                for start, batch in _chunks(part.dataset, max(1, encoder.batch_size * 4), self.options.max_items):
                    n = len(batch["true_label"])
                    image_sources = [image_source_from_value(value, f"{part.source} row {start + j}")
                                     for j, value in enumerate(batch["image"])]
                    images, ok = encoder.encode_images(image_sources, progress=False)
                    decoded = ok.tolist()
                    _skipped(encoder, image_sources, ok, skipped)
                    keep, captions, negatives = [], [], []
                    for j, (tested, true) in enumerate(zip(batch["tested_labels"], batch["true_label"])):
                        caption, negative = mirror_captions(tested, true, part.names, f"{part.source}, row {start + j}")
                        if (str(caption).strip(), str(negative).strip()) == REMOVED_UPSTREAM.get(subset):
                            removed = True
                        caption, problem = decode_text(caption)
                        negative, negative_problem = decode_text(negative)
                        if problem or negative_problem:
                            reasons[caption_skip_reason(problem) if problem else
                                    caption_skip_reason(negative_problem, negative=True)] += 1
                        elif not decoded[j]:
                            reasons[_image_reason(encoder, image_sources[j])] += 1
                        else:
                            keep.append(j)
                            captions.append(caption)
                            negatives.append(negative)
                    if keep:
                        u = images[keep]
                        positive_scores.append((u * encoder.encode_texts(captions, progress=False)).sum(-1).numpy())
                        negative_scores.append((u * encoder.encode_texts(negatives, progress=False)).sum(-1).numpy())
                    rows += n
                    kept_rows += len(keep)
                    bar.update(n)
            subsets[subset] = {"items": rows, "scored": kept_rows, "skipped": rows - kept_rows}
            total += rows
            scored += kept_rows
            mirror_rows = part.rows if part.rows is not None else (None if self.options.max_items else rows)
            if mirror_rows is None:
                note = (f"sugarcrepe: {subset}: the mirror's item count is unknown (a stream cut by --max_items): "
                        f"{rows} items read, official release has {OFFICIAL_ITEMS[subset]}.")
            else:
                note = mirror_count_note(subset, part.source, mirror_rows)
            if note and removed:
                note += (" It still holds the item the official file dropped on 2023-11-18 (swap_obj key '108', "
                         "000000310622.jpg, an incorrect caption).")
            if note:
                notes.append(note)
            if not kept_rows:
                logger.warning("SugarCrepe %s: no item could be scored; the subset is not scored.", subset)
                continue
            details[f"{subset}/positive_scores"] = np.concatenate(positive_scores)
            details[f"{subset}/negative_scores"] = np.concatenate(negative_scores)
            accuracies[subset] = sugarcrepe_accuracy(details[f"{subset}/positive_scores"],
                                                     details[f"{subset}/negative_scores"])
        return _result(accuracies, details, subsets, skipped, reasons, total, scored, notes)


def _result(accuracies, details, subsets, skipped, reasons, total, scored, notes) -> BenchmarkResult:
    """The result of either layout: the subsets' accuracies with SugarCrepe's averages, and the notes they need."""
    definition = (f"SugarCrepe: {SUGARCREPE_OVERALL_DEFINITION}; replace/swap/add = mean of their subsets (the "
                  f"rule of SugarCrepe's eval.py: correct when the positive caption scores strictly higher; a tie is "
                  f"wrong).")
    notes = [definition, *notes]
    partial = [s for s, c in subsets.items() if c["skipped"]]
    if partial:
        notes.append(f"sugarcrepe: items skipped (unusable images or captions) in {', '.join(partial)}: those "
                     f"subsets and the averages over them are computed on the remaining items only.")
    return BenchmarkResult(
        metrics=sugarcrepe_summary(accuracies, {s: c["scored"] for s, c in subsets.items()}),
        num_items=total,
        num_scored=scored,
        skipped_images=skipped,
        subsets=subsets,
        details=details,
        notes=notes,
        skipped_reasons=reasons,
    )
