"""The readers every evaluation task shares, each format recognised by its layout and checked before any model runs
(a task's own format, such as SugarCrepe's JSON files or the Karpathy splits, is read in the task's file).

- **Datasets** in any form `dataset_builders.sources` resolves (a Hub id, a Hub-layout or ``save_to_disk`` folder,
  WebDataset shards such as the released TripletData, a folder of class sub-folders): Winoground-style pairs of pairs
  (``facebook/winoground``'s columns), TripletData, retrieval (``image`` + ``captions``, or a list-valued ``caption``
  column as the Karpathy test splits are published), image classification (``image`` + ``ClassLabel``).
- **CLIP_benchmark WebDataset repositories** (``clip-benchmark/wds_*``, as its ``clip_benchmark_export_wds``
  writes them): ``<split>/{0..N-1}.tar`` with ``<split>/nshards.txt``; images ``.webp``/``.png``/``.jpg``/``.jpeg``;
  classification samples carry ``.cls`` with ``classnames.txt`` and ``zeroshot_classification_templates.txt`` at
  the root, retrieval ones ``.txt`` (one caption per line) with ``dataset_type.txt`` = ``retrieval``. A Hub id whose
  name starts with ``wds_`` is downloaded (that split and the text files) with ``huggingface_hub.snapshot_download``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from dataset_builders import schema
from dataset_builders.sources import DatasetSourceError, dataset_columns, load_dataset
from dataset_builders.utils.locations import is_local

from .errors import EvaluationInputError

logger = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "validation", "val", "train")
"""The split evaluated when none is given: the first of these the dataset has (else its first split)."""

FORMATS = (
    "SugarCrepe JSON files (a folder of <subset>.json, or one of them)",
    "Karpathy-split JSON (COCO / Flickr30k)",
    "a CLIP_benchmark WebDataset folder or Hub id (<split>/*.tar with nshards.txt, classnames.txt / dataset_type.txt)",
    "a dataset the datasets library reads: a Hub id, a Hub-layout folder (data/*.parquet), a save_to_disk folder, "
    "WebDataset shards, or a folder of class sub-folders",
)
"""The evaluation data formats, for messages."""


# Datasets -------------------------------------------------------------------------------------------------------


def open_dataset(path: str | Path, split: str | None = None, streaming: bool = False, what: str = "dataset"):
    """Open a dataset for evaluation in any supported format (see the module docstring).

    Without ``split``, the first of :data:`SPLIT_PREFERENCE` the dataset has is used (else its first split).

    Returns:
        ``(dataset, split)``: a `datasets.Dataset` (or `datasets.IterableDataset` when streaming) and its split.
    """
    clip_benchmark = find_clip_benchmark(path, split)
    if clip_benchmark is not None:
        return clip_benchmark.dataset(split, streaming=streaming), clip_benchmark.split(split)
    try:
        loaded = load_dataset(path, split=None, streaming=streaming)
    except DatasetSourceError as error:
        if "gated dataset" in str(error):
            raise EvaluationInputError(f"Cannot read the {what}: {error}") from error
        raise EvaluationInputError(f"Cannot read the {what}: {error} Known evaluation formats: "
                                   + "; ".join(FORMATS) + ".") from error
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        where = (f"the folder {str(path)!r} could not be read" if is_local(path)
                 else f"{str(path)!r} is not a local folder, nor a dataset loadable from the Hub")
        raise EvaluationInputError(
            f"Cannot read the {what}: {where} ({error}). Known evaluation formats: " + "; ".join(FORMATS) + "."
        ) from error
    if isinstance(loaded, (datasets.Dataset, datasets.IterableDataset)):
        return loaded, split or "train"
    splits = list(loaded)
    if split is None:
        split = next((s for s in SPLIT_PREFERENCE if s in loaded), splits[0])
    elif split not in loaded:
        raise EvaluationInputError(f"The {what} at {path!r} has no split {split!r}; it has {splits}.")
    return loaded[split], split


def require_columns(dataset, required: Sequence[str], benchmark: str, source: str, optional: Sequence[str] = ()):
    """Raise :class:`EvaluationInputError` naming the missing columns and the expected ones."""
    present = dataset_columns(dataset)
    missing = [c for c in required if c not in present]
    if missing:
        extra = f" (optional: {', '.join(optional)})" if optional else ""
        raise EvaluationInputError(
            f"The {benchmark} data {source!r} lacks the column(s) {', '.join(missing)}. A {benchmark} dataset needs "
            f"{', '.join(required)}{extra}; this one has {', '.join(present) or 'no columns'}. Rename columns with "
            "`dataset.rename_column(old, new)` before evaluating."
        )
    return present


def undecoded_images(dataset, columns: Sequence[str]):
    """Cast the image columns to ``Image(decode=False)`` so that images are decoded by the encoder, where a broken one
    is skipped and counted instead of stopping the run."""
    for column in columns:
        feature = dataset.features[column] if dataset.features is not None else None
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


# CLIP_benchmark ---------------------------------------------------------------------------------------------------

CLIP_BENCHMARK_IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")


@dataclass
class ClipBenchmarkData:
    """A dataset exported by CLIP_benchmark's ``clip_benchmark_export_wds``.

    Attributes:
        root: the local folder.
        task: ``"classification"`` or ``"retrieval"`` (from ``dataset_type.txt``; classification when absent).
        splits: the split folders holding shards.
        classnames: the class names (classification).
        templates: the dataset's own zero-shot templates, with ``{}`` for the class (classification; may be empty).
    """

    root: Path
    task: str
    splits: list[str]
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)

    def split(self, split: str | None) -> str:
        if split is None:
            return next((s for s in SPLIT_PREFERENCE if s in self.splits), self.splits[0])
        if split not in self.splits:
            raise EvaluationInputError(f"The CLIP_benchmark dataset {self.root} has no split {split!r}; it has "
                                       f"{self.splits}.")
        return split

    def shards(self, split: str | None) -> list[str]:
        folder = self.root / self.split(split)
        count_file = folder / "nshards.txt"
        if count_file.is_file():
            count = int(count_file.read_text().strip())
            shards = [str(folder / f"{i}.tar") for i in range(count)]
            missing = [s for s in shards if not Path(s).is_file()]
            if missing:
                raise EvaluationInputError(f"{count_file} announces {count} shards, but {len(missing)} are missing "
                                           f"(e.g. {missing[0]}). Download the whole split.")
            return shards
        return sorted(str(p) for p in folder.glob("*.tar"))

    def features(self) -> datasets.Features:
        if self.task == "retrieval":
            return datasets.Features({schema.IMAGE: datasets.Image(decode=False),
                                      schema.CAPTIONS: datasets.List(datasets.Value("string"))})
        return datasets.Features({schema.IMAGE: datasets.Image(decode=False),
                                  "label": datasets.ClassLabel(names=self.classnames)})

    def dataset(self, split: str | None, streaming: bool = False):
        """The split as a `datasets` dataset with ``image`` (undecoded) and ``label`` or ``captions``."""
        shards = self.shards(split)
        retrieval = self.task == "retrieval"

        def samples(shards):
            import webdataset as wds

            for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
                image = next((sample[k] for k in CLIP_BENCHMARK_IMAGE_KEYS if sample.get(k) is not None), None)
                row = {schema.IMAGE: None if image is None else {"bytes": image, "path": sample["__key__"]}}
                if retrieval:
                    text = (sample.get("txt") or b"").decode("utf-8", errors="replace")
                    row[schema.CAPTIONS] = [line.strip() for line in text.splitlines() if line.strip()]
                else:
                    row["label"] = int((sample.get("cls") or b"-1").decode().strip())
                yield row

        kwargs = {"gen_kwargs": {"shards": shards}, "features": self.features()}
        if streaming:
            return datasets.IterableDataset.from_generator(samples, **kwargs)
        return datasets.Dataset.from_generator(samples, **kwargs)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def find_clip_benchmark(value: str | Path, split: str | None = None) -> ClipBenchmarkData | None:
    """The CLIP_benchmark export at ``value`` (a folder, or a Hub id whose name starts with ``wds_``, downloaded),
    or None when ``value`` is not one."""
    root = Path(str(value)).expanduser()
    if not root.is_dir():
        if is_local(value) or not str(value).split("/")[-1].startswith("wds_"):
            return None
        root = _download_clip_benchmark(str(value), split)
    markers = [root / "classnames.txt", root / "dataset_type.txt", root / "zeroshot_classification_templates.txt"]
    splits = sorted(p.parent.name for p in root.glob("*/nshards.txt"))
    if not splits and not any(m.is_file() for m in markers):
        return None
    if not splits:
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.tar")))
    if not splits:
        raise EvaluationInputError(f"{root} looks like a CLIP_benchmark export (it has "
                                   f"{', '.join(m.name for m in markers if m.is_file())}) but holds no "
                                   f"<split>/*.tar shards.")
    task = "classification"
    if (root / "dataset_type.txt").is_file():
        task = (root / "dataset_type.txt").read_text().strip().lower() or "classification"
    if task not in ("classification", "retrieval"):
        raise EvaluationInputError(f"{root}: CLIP_benchmark datasets of type {task!r} are not supported "
                                   f"(classification and retrieval are).")
    data = ClipBenchmarkData(root, task, splits)
    if task == "classification":
        if not (root / "classnames.txt").is_file():
            raise EvaluationInputError(f"{root} is a CLIP_benchmark classification export without classnames.txt "
                                       f"(one class name per line, in class-index order).")
        data.classnames = _read_lines(root / "classnames.txt")
        templates = root / "zeroshot_classification_templates.txt"
        if templates.is_file():
            data.templates = [t.replace("{c}", "{}") for t in _read_lines(templates)]
    return data


def _download_clip_benchmark(repo_id: str, split: str | None) -> Path:
    """A local copy of a CLIP_benchmark Hub dataset: its text files and the shards of ``split`` (default: test)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.txt", f"{split or 'test'}/*"]
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
    except Exception as error:  # offline, gated, missing: say so in the user's terms
        raise EvaluationInputError(
            f"Cannot download the CLIP_benchmark dataset {repo_id!r} ({type(error).__name__}: {error}). Check the id "
            f"and the network, or download it once with `hf download --repo-type dataset {repo_id} --local-dir DIR` "
            f"and pass DIR."
        ) from error


# Repositories read as files -----------------------------------------------------------------------------------------


def local_copy(value: str | Path, allow_patterns: Sequence[str] | None = None) -> Path:
    """A benchmark distributed as files (JSON, CSV, image folders): ``value`` itself when it is a local path, else the
    Hub dataset repository ``value`` downloaded (only ``allow_patterns``) with `huggingface_hub.snapshot_download`."""
    if is_local(value):
        return Path(value)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(value), repo_type="dataset", allow_patterns=allow_patterns))
    except Exception as error:  # the Hub client's errors: unknown repository, gated, offline
        gated = "gated" in str(error).lower()
        raise EvaluationInputError(
            f"Cannot download the dataset repository {str(value)!r} ({type(error).__name__}: {error}). "
            + (f"It is gated: accept its conditions at https://huggingface.co/datasets/{value} and log in with "
               f"`hf auth login`." if gated else "Give a local copy of it, or check the id and the network.")
        ) from error
