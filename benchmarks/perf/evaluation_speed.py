"""Evaluation speed: a SugarCrepe-format evaluation vs encoding only its unique images and captions.

The real SugarCrepe annotations (7,511 items over 1,560 COCO images, seven JSON files) are scored against stand-in
images written under the COCO file names they give (320 x 240 JPEGs of coloured shapes; COCO's are about 640 x 480),
with a randomly initialised model of a preset whose tokenizer is trained on the captions.

- **evaluation**: `evaluate_model(model, processor, {"sugarcrepe": annotations}, images=...)`: reading and checking
  the JSON files and image names, encoding, scoring, metrics;
- **baseline**: a fresh `CLIPEncoder` encoding the 1,560 unique images and the unique captions, nothing else: the
  least work any evaluation must do.

Goal: the evaluation takes at most 1.1 times the baseline (each image and caption encoded once, little overhead).

The **suite** figure does the same for two benchmarks that share their images, as SugarCrepe and SugarCrepe++ share
COCO's val2017: `evaluate_model` on SugarCrepe and a SugarCrepe++ set in its official layout (five JSON files; each
item of SugarCrepe's replace and swap subsets with a second positive, the caption reworded, naming the same image),
divided by encoding the distinct images and captions of both once. Goal ≤ 1.1: across benchmarks too, each distinct
image and caption is encoded once per run.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dataset_builders.synthesis.rules import NEGATIVE_KINDS

from .timing import Figure, Goal, Ratio, interleaved, ratio_figure

GOAL = Goal("<=", 1.1)
SECTION = "Evaluation"
STAND_IN_SIZE = (320, 240)


def default_annotations() -> Path:
    """The real SugarCrepe JSON files kept with the tests (``tests/data/sugarcrepe``)."""
    root = Path(__file__).resolve().parents[2]
    candidates = [root / "tests" / "data" / "sugarcrepe"]
    for candidate in candidates:
        if (candidate / "add_att.json").is_file():
            return candidate
    raise FileNotFoundError(
        "The SugarCrepe annotations were not found (looked in " + ", ".join(map(str, candidates)) + "). Point "
        "--sugarcrepe to the folder holding the seven official JSON files (add_att.json ... swap_obj.json)."
    )


def prepare(annotations: Path, work_dir: Path, items_per_subset: int | None = None) -> tuple[Path, Path]:
    """Annotations to evaluate (all, or the first ``items_per_subset`` of each subset) and a folder of stand-in
    images for every file they name (written once, then reused)."""
    annotations = Path(annotations)
    if items_per_subset is not None:
        subset_dir = work_dir / f"sugarcrepe-first{items_per_subset}"
        subset_dir.mkdir(parents=True, exist_ok=True)
        for subset in NEGATIVE_KINDS:
            content = json.loads((annotations / f"{subset}.json").read_text())
            kept = dict(list(content.items())[:items_per_subset])
            (subset_dir / f"{subset}.json").write_text(json.dumps(kept))
        annotations = subset_dir
    names = sorted(unique_images(annotations))
    images = work_dir / "sugarcrepe-stand-in-images"
    images.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = images / name
        if not path.is_file():
            stand_in_image(name).save(path.with_suffix(".tmp" + path.suffix), format="JPEG", quality=90)
            path.with_suffix(".tmp" + path.suffix).replace(path)
    return annotations, images


SUGARCREPE_PP_SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def reworded(caption: str) -> str:
    """A second positive for the SugarCrepe++ stand-in: the same scene in other words."""
    return f"A picture showing {caption[:1].lower()}{caption[1:]}"


def prepare_sugarcrepe_pp(annotations: Path, work_dir: Path) -> Path:
    """A SugarCrepe++-layout folder (``<subset>.json``: lists of ``id, filename, caption, caption2,
    negative_caption``) built from SugarCrepe's replace and swap subsets: the same images, a reworded positive."""
    folder = Path(work_dir) / f"sugarcrepe_pp-from-{Path(annotations).name}"
    folder.mkdir(parents=True, exist_ok=True)
    for subset in SUGARCREPE_PP_SUBSETS:
        items = json.loads((Path(annotations) / f"{subset}.json").read_text())
        rows = [{"id": int(key), "filename": item["filename"], "caption": item["caption"],
                 "caption2": reworded(item["caption"]), "negative_caption": item["negative_caption"]}
                for key, item in items.items()]
        (folder / f"{subset}.json").write_text(json.dumps(rows))
    return folder


def stand_in_image(name: str) -> Image.Image:
    """A picture of a few coloured shapes, different for each file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    width, height = STAND_IN_SIZE
    image = Image.new("RGB", STAND_IN_SIZE, tuple(int(c) for c in rng.integers(0, 256, 3)))
    pen = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 120))
        pen.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def read_items(annotations: Path) -> list[dict]:
    items = []
    for subset in NEGATIVE_KINDS:
        items.extend(json.loads((Path(annotations) / f"{subset}.json").read_text()).values())
    return items


def unique_images(annotations: Path) -> set[str]:
    return {item["filename"] for item in read_items(annotations)}


def unique_captions(annotations: Path) -> list[str]:
    return list(dict.fromkeys(text for item in read_items(annotations)
                              for text in (item["caption"], item["negative_caption"])))


def against_encoding(model, processor, benchmarks: dict, images: Path, names: list[str], captions: list[str],
                     repeats: int, device: str):
    """Time `evaluate_model` on ``benchmarks`` against a fresh `CLIPEncoder` encoding only the distinct images
    ``names`` and ``captions``, interleaved; returns (timings of "evaluation" and "baseline", the last metrics)."""
    import torch

    from modeling_tripletclip.encoding import image_source_from_file
    from modeling_tripletclip.evaluation import CLIPEncoder, evaluate_model

    results = {}

    def evaluation():
        results["metrics"] = evaluate_model(model, processor, benchmarks, images=images, progress=False)

    def baseline():
        encoder = CLIPEncoder(model, processor, progress=False)
        encoder.encode_images([image_source_from_file(images / name) for name in names])
        encoder.encode_texts(captions)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    timings = interleaved({"evaluation": evaluation, "baseline": baseline}, repeats=repeats, warmup=0, sync=sync)
    return timings, results


def measure(preset: str, annotations: Path, images: Path, repeats: int, device: str = "cpu",
            profile_dir=None) -> Figure:
    import torch

    from modeling_tripletclip.presets import create_model_and_processor

    captions = unique_captions(annotations)
    torch.manual_seed(0)
    model, processor = create_model_and_processor(preset, corpus=captions)
    model.to(device).eval()
    items = read_items(annotations)
    names = list(dict.fromkeys(item["filename"] for item in items))
    timings, results = against_encoding(model, processor, {"sugarcrepe": annotations}, images, names, captions,
                                        repeats, device)
    figure = ratio_figure(
        f"eval/sugarcrepe/{preset}",
        SECTION,
        f"SugarCrepe evaluation ({len(items):,} items, {len(names):,} images) / encoding the unique images and "
        f"{len(captions):,} unique captions: {preset}, {device}",
        Ratio.of(timings, "evaluation", "baseline"),
        GOAL,
        items=len(items),
        unique_images=len(names),
        unique_captions=len(captions),
        stand_in_image_size=list(STAND_IN_SIZE),
        overall_accuracy_random_model=results["metrics"]["sugarcrepe"].get("overall"),
    )
    if profile_dir is not None and figure.met is False:
        from .data_pipeline import cprofile

        from modeling_tripletclip.evaluation import evaluate_model

        def evaluation():
            evaluate_model(model, processor, {"sugarcrepe": annotations}, images=images, progress=False)

        figure.profile = str(cprofile(evaluation, Path(profile_dir) / f"perf_profile_eval_sugarcrepe_{preset}.txt",
                                      f"evaluate_model on SugarCrepe ({len(items)} items), {preset}"))
    return figure



def measure_suite(preset: str, annotations: Path, images: Path, repeats: int, device: str = "cpu") -> Figure:
    """The suite figure: SugarCrepe and SugarCrepe++ (sharing their images) in one `evaluate_model` run, divided by
    encoding the distinct images and captions of both once."""
    import torch

    from modeling_tripletclip.presets import create_model_and_processor

    pp = prepare_sugarcrepe_pp(annotations, Path(images).parent)
    pp_items = [row for subset in SUGARCREPE_PP_SUBSETS for row in json.loads((pp / f"{subset}.json").read_text())]
    captions = list(dict.fromkeys([*unique_captions(annotations),
                                   *(t for row in pp_items for t in (row["caption"], row["caption2"],
                                                                     row["negative_caption"]))]))
    names = sorted(unique_images(annotations) | {row["filename"] for row in pp_items})
    torch.manual_seed(0)
    model, processor = create_model_and_processor(preset, corpus=captions)
    model.to(device).eval()
    items = len(read_items(annotations)) + len(pp_items)
    timings, _ = against_encoding(model, processor, {"sugarcrepe": annotations, "sugarcrepe_pp": pp}, images, names,
                                  captions, repeats, device)
    return ratio_figure(
        f"eval/suite/{preset}", SECTION,
        f"SugarCrepe + SugarCrepe++ in one run ({items:,} items, {len(names):,} shared images) / encoding the distinct "
        f"images and {len(captions):,} distinct captions: {preset}, {device}",
        Ratio.of(timings, "evaluation", "baseline"), GOAL, items=items, unique_images=len(names),
        unique_captions=len(captions), stand_in_image_size=list(STAND_IN_SIZE))
