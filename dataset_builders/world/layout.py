"""Where each part of a generated world lives: the one description of a world folder.

    DIR/world.json      the manifest: configuration, held-out (colour, shape) combinations, counts, timings;
                        written last, so a world without it is unfinished
    DIR/train/          TripletData (Hub layout)
    DIR/test/           TripletData, split "test", from held-out scenes
    DIR/sugarcrepe/     the seven SugarCrepe JSON files and images/
    DIR/winoground/     Winoground-style pairs (Hub layout)
    DIR/retrieval/      retrieval: image + captions (Hub layout)

Every reader and writer of a world goes through :class:`WorldLayout`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.errors import InputError

MANIFEST = "world.json"
PARTS = ("train", "test", "sugarcrepe", "winoground", "retrieval")

#: The folder each benchmark reads (TripletData-based benchmarks use the held-out ``test`` triplets).
BENCHMARK_PARTS: dict[str, str] = {
    "sugarcrepe": "sugarcrepe",
    "winoground": "winoground",
    "retrieval": "retrieval",
    "tripletdata": "test",
    "similarity": "test",
}


@dataclass(frozen=True)
class WorldLayout:
    """The folder of a generated world and the path of each of its parts."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root).expanduser())

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def part(self, name: str) -> Path:
        if name not in PARTS:
            raise ValueError(f"A world has no part {name!r}; its parts are {', '.join(PARTS)}.")
        return self.root / name

    @property
    def train(self) -> Path:
        return self.part("train")

    @property
    def test(self) -> Path:
        return self.part("test")

    @property
    def sugarcrepe(self) -> Path:
        return self.part("sugarcrepe")

    @property
    def sugarcrepe_images(self) -> Path:
        return self.sugarcrepe / "images"

    @property
    def winoground(self) -> Path:
        return self.part("winoground")

    @property
    def retrieval(self) -> Path:
        return self.part("retrieval")

    def is_world(self) -> bool:
        """Whether the folder holds a finished world (its manifest is written last)."""
        return self.manifest.is_file()

    def load_manifest(self) -> dict[str, Any]:
        """The manifest (configuration, held-out combinations, counts, timings)."""
        if not self.manifest.is_file():
            raise FileNotFoundError(
                f"{self.manifest} not found: {self.root} is not a finished world. Generate one with "
                f"`tripletclip data world --output_dir {self.root}`."
            )
        return json.loads(self.manifest.read_text(encoding="utf-8"))

    def benchmark_paths(self, names: Sequence[str] | None = None) -> dict[str, Path]:
        """``{benchmark: data path}`` of the world's benchmarks (default: every one whose folder exists).

        Raises:
            InputError: the folder is not a world, a benchmark the world does not have, or a missing part.
        """
        if not self.root.is_dir():
            raise InputError(f"The world folder {self.root} does not exist; create it with "
                             f"`tripletclip data world --output_dir {self.root}`.")
        if names is None:
            found = {name: self.part(part) for name, part in BENCHMARK_PARTS.items() if self.part(part).is_dir()}
            if not found:
                raise InputError(
                    f"{self.root} holds none of the world's benchmark folders "
                    f"({', '.join(sorted(set(BENCHMARK_PARTS.values())))}); create it with "
                    f"`tripletclip data world --output_dir {self.root}`."
                )
            return found
        paths = {}
        for name in names:
            if name not in BENCHMARK_PARTS:
                raise InputError(f"The world has no data for the {name} benchmark; it has "
                                 f"{', '.join(BENCHMARK_PARTS)}. Give --data for it.")
            path = self.part(BENCHMARK_PARTS[name])
            if not path.is_dir():
                raise InputError(f"{path} does not exist: {self.root} is not a complete world.")
            paths[name] = path
        return paths


__all__ = ["BENCHMARK_PARTS", "MANIFEST", "PARTS", "WorldLayout"]
