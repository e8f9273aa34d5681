"""A `datasets.GeneratorBasedBuilder` for TripletData built from raw sources (official WebDataset shards).

For users who prepare the data themselves with datasets' builder API rather than `load_dataset` (datasets 5 no
longer runs loading scripts, but a builder class in an installed package works)::

    from dataset_builders.builder import TripletDataBuilder

    builder = TripletDataBuilder(data_files={"train": ["shard-0.tar", "shard-1.tar"]}, cache_dir="cache")
    builder.download_and_prepare()                  # validated arrow files in the cache
    dataset = builder.as_dataset(split="train")
    stream = builder.as_streaming_dataset(split="train")   # or read lazily, nothing prepared

Samples with an undecodable image, an empty caption or a missing field are skipped; the counts are kept in
``builder.skipped`` (per reason) and logged after each shard.
"""

from __future__ import annotations

import logging
from collections import Counter

import datasets
from datasets.packaged_modules.webdataset.webdataset import WebDataset

from . import schema
from .released_shards import official_to_triplet, valid_triplet

logger = logging.getLogger(__name__)


class TripletDataBuilder(datasets.GeneratorBasedBuilder):
    """TripletData from WebDataset tar shards in the official layout (``.image``, ``.neg_image``, ``.caption``,
    ``.neg_caption``); pass them as ``data_files`` (a list, or a dict split -> list; local paths or URLs)."""

    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows with two images: keep arrow record batches small

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: Counter = Counter()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="TripletData: images, captions, hard-negative captions and hard-negative images.",
            features=schema.triplet_features([schema.ID]),
            license="apache-2.0",
        )

    def _split_generators(self, dl_manager):
        if not self.config.data_files:
            raise ValueError(
                "TripletDataBuilder needs data_files: the WebDataset .tar shards, e.g. "
                "TripletDataBuilder(data_files={'train': ['shard-0.tar']})."
            )
        data_files = dl_manager.download(self.config.data_files)
        generators = []
        for split, tar_paths in data_files.items():
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "tar_paths": list(tar_paths),
                        "tar_iterators": [dl_manager.iter_archive(path) for path in tar_paths],
                    },
                )
            )
        return generators

    def _generate_examples(self, tar_paths, tar_iterators):
        for tar_path, tar_iterator in zip(tar_paths, tar_iterators):
            skipped: Counter = Counter()
            # datasets' own WebDataset grouping of tar members into samples (by key prefix).
            for sample in WebDataset._get_pipeline_from_tar(tar_path, tar_iterator):
                sample = {name.lower(): value for name, value in sample.items()}
                row, reason = valid_triplet(official_to_triplet(sample))
                if reason is not None:
                    skipped[reason] += 1
                    continue
                yield row[schema.ID], row
            if skipped:
                logger.warning("%s: skipped %s", tar_path, dict(skipped))
                self.skipped.update(skipped)
