"""VALSE (Parcalabescu et al., ACL 2022): captions against foils that change one linguistic phenomenon, in eleven
instruments (existence, plurals, three counting sets, relations, two action sets, two coreference sets, FOIL-it).

**Data**: the repository's ``data/`` folder (``Heidelberg-NLP/VALSE``): ``existence.json``, ``plurals.json``,
``counting-hard.json``, ``counting-small-quant.json``, ``counting-adversarial.json``, ``relations.json``,
``action-replacement.json``, ``actant-swap.json``, ``coreference-standard.json``, ``coreference-hard.json``,
``foil-it.json``, each ``{id: {"image_file", "caption", "foil", "mturk": {"caption", "foil", "other"}, ...}}``; the
images come from their source datasets (Visual7W, SWiG, VisDial, COCO, ...): ``--images`` names one folder under
which every ``image_file`` is found by name (in any sub-folder).

**Scoring** follows VALSE's ``lxmert_valse_eval.py`` for a model that scores image-text pairs: only valid samples,
``mturk["caption"] >= 2`` (the filter the VALSE README prescribes); pairwise accuracy ``acc_r`` = the share where the
image scores strictly higher with the caption than with the foil (a tie is wrong), per instrument; ``average`` is the
unweighted mean of the eleven instruments (the paper's Avg.), reported only when all eleven were scored, else
``partial_average``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...encoding import CLIPEncoder, image_source_from_file
from ..errors import EvaluationInputError
from .base import Benchmark, BenchmarkResult, _skipped

INSTRUMENTS = ("existence", "plurals", "counting-hard", "counting-small-quant", "counting-adversarial", "relations",
               "action-replacement", "actant-swap", "coreference-standard", "coreference-hard", "foil-it")
MIN_CAPTION_VOTES = 2


def _folder(value) -> Path:
    root = Path(str(value))
    for folder in (root, root / "data"):
        if any((folder / f"{name}.json").is_file() for name in INSTRUMENTS):
            return folder
    raise EvaluationInputError(f"{root} holds none of VALSE's files ({', '.join(n + '.json' for n in INSTRUMENTS)}). "
                               f"Give the data/ folder of the VALSE repository.")


class VALSEBenchmark(Benchmark):
    """VALSE's pairwise accuracy (caption over foil) per instrument on the valid samples, and their average."""

    name = "valse"
    card = ("Compositional image-text matching", "valse", "VALSE")
    folder_names = ("VALSE", "valse")
    headline = "average"

    def __init__(self, data, options=None):
        super().__init__(data, options)
        folder = _folder(data)
        self.instruments, self.filtered = {}, {}
        for name in INSTRUMENTS:
            path = folder / f"{name}.json"
            if not path.is_file():
                continue
            try:
                items = json.loads(path.read_text(encoding="utf-8"))
                valid = [i for i in items.values() if i["mturk"]["caption"] >= MIN_CAPTION_VOTES]
                for item in valid:
                    missing = [key for key in ("image_file", "caption", "foil") if key not in item]
                    if missing:
                        raise KeyError(", ".join(missing))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise EvaluationInputError(f"{path} is not a VALSE file ({type(error).__name__}: {error}).") from None
            self.filtered[name] = len(items) - len(valid)
            self.instruments[name] = valid[: self.options.max_items] if self.options.max_items else valid
        root = Path(self.options.images) if self.options.images else folder.parent / "images"
        if not root.is_dir():
            raise EvaluationInputError(f"No image folder {root}: pass the folder holding VALSE's images (from its "
                                       f"source datasets, in any sub-folders) with --images DIR.")
        index: dict[str, list[Path]] = {}
        for path in root.rglob("*"):
            if path.is_file():
                index.setdefault(path.name, []).append(path)
        self.paths, missing = {}, []
        for item in (i for items in self.instruments.values() for i in items):
            found = index.get(item["image_file"], [])
            if not found:
                missing.append(item["image_file"])
            else:
                self.paths[item["image_file"]] = found[0]
        if missing:
            raise EvaluationInputError(f"{len(set(missing))} VALSE image(s) are not under {root}, e.g. {missing[0]}. "
                                       f"Download them from their source datasets (the 'dataset' field) into --images.")

    def run(self, encoder: CLIPEncoder) -> BenchmarkResult:
        metrics, skipped, total, scored = {}, {}, 0, 0
        for name, items in self.instruments.items():
            if not items:
                continue
            sources = [image_source_from_file(self.paths[i["image_file"]]) for i in items]
            images, ok = encoder.encode_images(sources, progress=False, desc=f"VALSE {name}")
            _skipped(encoder, sources, ok, skipped)
            captions = encoder.encode_texts([i["caption"] for i in items], progress=False)
            foils = encoder.encode_texts([i["foil"] for i in items], progress=False)
            correct = ((images * captions).sum(-1) > (images * foils).sum(-1))[ok]
            total += len(items)
            scored += int(ok.sum())
            if len(correct):
                metrics[name] = float(correct.float().mean())
        present = [n for n in INSTRUMENTS if n in metrics]
        if not present:
            raise EvaluationInputError(f"No VALSE sample of {self.data!r} could be scored.")
        key = "average" if len(present) == len(INSTRUMENTS) else "partial_average"
        metrics[key] = float(np.mean([metrics[n] for n in present]))
        notes = [f"valse: valid samples only (mturk caption votes >= {MIN_CAPTION_VOTES}; "
                 f"{sum(self.filtered.values())} left out); acc_r per instrument; {key} over {', '.join(present)}."]
        return BenchmarkResult(metrics, num_items=total, num_scored=scored, skipped_images=skipped, notes=notes)
