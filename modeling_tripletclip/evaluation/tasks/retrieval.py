"""Image-text retrieval: one image, several captions that all describe it.

**Data**: ``image`` + ``captions`` (a list), or a list-valued ``caption`` column as the Karpathy test splits are
published; a CLIP_benchmark WebDataset export (``.txt`` captions); the Karpathy-split JSON of COCO / Flickr30k
(``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}``) with its image folder.

**Scoring** follows CLIP_benchmark's ``clip_benchmark/metrics/zeroshot_retrieval.py`` (``evaluate``, ``recall_at_k``):
text-to-image recall@k is the share of captions whose image is among the k best; image-to-text, the share of images
with at least one of their captions among the k best; a k with no more candidates than k is left out with a note.
One difference, on exact score ties only: CLIP_benchmark's ``topk`` lets index order decide (its result then depends
on the batch size), here a tie counts against the model.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import torch
from tqdm.auto import tqdm

from dataset_builders import schema
from dataset_builders.rows import caption_skip_reason, decode_text
from dataset_builders.sources import dataset_columns

from ...encoding import CLIPEncoder, image_source_from_file, image_source_from_value
from .. import data as readers
from ..errors import EvaluationInputError
from ..metrics import retrieval_recall
from .base import Benchmark, BenchmarkResult, _chunks, _length, _skipped

logger = logging.getLogger(__name__)


# Reading ---------------------------------------------------------------------------------------------------------


def retrieval_columns(dataset, source: str) -> str:
    """Check a retrieval dataset's columns; returns the one holding each image's captions: ``captions``, or a
    list-valued ``caption`` (as the Karpathy test splits of COCO and Flickr30k are published: ``image``, ``caption``
    (5 strings), ``filename``, ``img_id``)."""
    present = dataset_columns(dataset)
    feature = (dataset.features or {}).get(schema.CAPTION)
    listed = isinstance(feature, (datasets.List, datasets.Sequence, list)) or (
        feature is None and dataset.features is None and schema.CAPTION in present)
    column = schema.CAPTIONS if schema.CAPTIONS in present else schema.CAPTION if listed else schema.CAPTIONS
    readers.require_columns(dataset, (schema.IMAGE, column), "retrieval", source,
                    optional=(f"a list-valued {schema.CAPTION!r} instead of {schema.CAPTIONS!r}",))
    return column



def load_karpathy_split(
    json_path: str | Path, images: str | Path | None, split: str | None = None
) -> list[tuple[Path, list[str]]]:
    """Read a Karpathy-split JSON (COCO / Flickr30k) and check the images exist.

    Args:
        json_path: ``{"images": [{"filename", "split", "sentences": [{"raw"}], "filepath"?}]}``.
        images: the image folder; an entry's file is ``<images>/<filepath>/<filename>`` when it has a
            ``filepath`` and that file exists, else ``<images>/<filename>``. Defaults to the JSON's folder.
        split: which split to read (default ``"test"``: COCO's 5k and Flickr30k's 1k test images).

    Returns:
        ``[(image_path, [captions])]`` in file order.
    """
    json_path = Path(json_path)
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationInputError(f"Cannot read the Karpathy-split file {json_path} ({error}).") from error
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise EvaluationInputError(
            f'{json_path} is not a Karpathy-split file: expected {{"images": [{{"filename", "split", '
            '"sentences": [{"raw"}]}]}.'
        )
    split = split or "test"
    entries = [e for e in content["images"] if e.get("split") == split]
    if not entries:
        found = sorted({str(e.get("split")) for e in content["images"]})
        raise EvaluationInputError(f"{json_path} has no images in split {split!r}; its splits are {found}.")
    image_dir = Path(images) if images is not None else json_path.parent
    rows, missing = [], []
    for entry in entries:
        if "filename" not in entry or "sentences" not in entry:
            raise EvaluationInputError(f"An entry of {json_path} lacks 'filename' or 'sentences': {str(entry)[:120]}")
        path = image_dir / entry["filename"]
        if entry.get("filepath"):
            nested = image_dir / entry["filepath"] / entry["filename"]
            if nested.is_file() or not path.is_file():
                path = nested
        if not path.is_file():
            missing.append(entry["filename"])
        rows.append((path, [s["raw"] for s in entry["sentences"]]))
    if missing:
        raise EvaluationInputError(
            f"{len(missing)} image file(s) named by {json_path.name} are not in {image_dir}: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Point --images at the image folder."
        )
    return rows



# Scoring ---------------------------------------------------------------------------------------------------------


class RetrievalBenchmark(Benchmark):
    """Zero-shot image-text retrieval recall@k with several captions per image (CLIP_benchmark's semantics, except
    that a tie counts against the model: see :mod:`.metrics`).

    Data: a dataset with ``image`` and ``captions`` (or a list-valued ``caption``), a CLIP_benchmark retrieval
    export, or a Karpathy-split JSON file (COCO / Flickr30k; ``--images`` is its image folder, ``--split`` its
    split, default test).
    """

    name = "retrieval"
    card = ("Zero-shot image-text retrieval", "retrieval", "Image-text retrieval")
    world_card = ("Retrieval set of the TripletCLIP procedural world", "tripletclip-world-retrieval")

    def __init__(self, data, options=None):
        super().__init__(data, options)
        self.karpathy = str(data).endswith(".json")
        if self.karpathy:
            rows = load_karpathy_split(data, self.options.images, self.options.split)
            if self.options.max_items:
                rows = rows[: self.options.max_items]
            self.rows = rows
            return
        exported = readers.find_clip_benchmark(data, self.options.split)
        if exported is not None and exported.task != "retrieval":
            raise EvaluationInputError(f"{data} is a CLIP_benchmark {exported.task} dataset: evaluate it with "
                                       f"--benchmark zeroshot.")
        if exported is not None:
            self.split = exported.split(self.options.split)
            self.dataset = exported.dataset(self.split, streaming=self.options.streaming)
        else:
            self.dataset, self.split = readers.open_dataset(
                data, split=self.options.split, streaming=self.options.streaming, what="retrieval data"
            )
        self.captions_column = retrieval_columns(self.dataset, str(data))
        self.dataset = readers.undecoded_images(self.dataset, [schema.IMAGE])

    def _row_chunks(self, chunk_size: int):
        """Yield ``(sources, captions per row)`` chunks."""
        if self.karpathy:
            for start in range(0, len(self.rows), chunk_size):
                chunk = self.rows[start : start + chunk_size]
                yield [image_source_from_file(p) for p, _ in chunk], [c for _, c in chunk], [[] for _ in chunk]
        else:
            for start, batch in _chunks(self.dataset, chunk_size, self.options.max_items):
                sources = [
                    image_source_from_value(v, f"row {start + j}, column {schema.IMAGE}")
                    for j, v in enumerate(batch[schema.IMAGE])
                ]
                captions, problems = [], []
                for row_captions in batch[self.captions_column]:
                    decoded = [decode_text(value) for value in row_captions or []]
                    captions.append([text for text, problem in decoded if problem is None])
                    problems.append([problem for _, problem in decoded if problem is not None])
                yield sources, captions, problems

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        image_rows, text_rows, owners, total, skipped = [], [], [], 0, {}
        reasons: Counter = Counter()
        total_rows = len(self.rows) if self.karpathy else _length(self.dataset, self.options.max_items)
        with tqdm(total=total_rows, desc=self.name, unit="image", disable=not encoder.progress) as bar:
            for sources, captions, problems in self._row_chunks(max(1, encoder.batch_size * 4)):
                total += len(sources)
                images, ok = encoder.encode_images(sources, progress=False)
                _skipped(encoder, sources, ok, skipped, reasons)
                for row_problems, good in zip(problems, ok.tolist()):
                    if good:  # the captions of a skipped image are left out with it
                        reasons.update(caption_skip_reason(problem) for problem in row_problems)
                flat = [c for row_captions, good in zip(captions, ok.tolist()) if good for c in row_captions]
                texts = encoder.encode_texts(flat, progress=False)
                for row, (row_captions, good) in enumerate(zip(captions, ok.tolist())):
                    if good:
                        owners.extend([len(image_rows)] * len(row_captions))
                        image_rows.append(images[row])
                text_rows.append(texts)
                bar.update(len(sources))
        if not image_rows:
            raise EvaluationInputError(f"No image of {self.data!r} could be scored (no rows, or none decodable).")
        image_matrix = torch.stack(image_rows)
        text_matrix = torch.cat(text_rows)
        if text_matrix.shape[0] == 0:
            raise EvaluationInputError(f"The retrieval data {self.data!r} has no captions.")
        scores = (image_matrix @ text_matrix.T).numpy()
        metrics = retrieval_recall(scores, owners, ks=self.options.ks)
        notes = []
        for direction, candidates in (("image", image_matrix.shape[0]), ("text", text_matrix.shape[0])):
            trivial = [k for k in self.options.ks if k >= candidates]
            for k in trivial:
                metrics.pop(f"{direction}_retrieval_recall@{k}", None)
            if trivial:
                notes.append(f"retrieval: {direction}_retrieval_recall@{','.join(map(str, trivial))} not applicable "
                             f"(only {candidates} {direction}s to rank: every one is in the top k), left out.")
        captions_left_out = sum(n for reason, n in reasons.items() if "caption" in reason)
        if captions_left_out:
            notes.append(f"retrieval: {captions_left_out} caption(s) could not be read (empty or not UTF-8) and were "
                         f"left out; their images keep their other captions.")
        return BenchmarkResult(metrics, num_items=total, num_scored=len(image_rows), skipped_images=skipped,
                               notes=notes, skipped_reasons=reasons)
