"""`tripletclip synthesize` end to end: TripletData out, bad input refused early, failed rows retried, and a
two-worker run (datatrove's local executor) killed with SIGKILL that resumes to exactly the rows of an uninterrupted
run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from test_synthesis_tiny_models import assert_same_picture, built, single_thread  # noqa: F401  (fixture)

from benchmarks.faults.trees import kill_all
from dataset_builders.synthesis.cli import main as synthesis_main
from dataset_builders.synthesis.rules import generate_negative
from dataset_builders.synthesis.runner import STATE_DIR, row_seed

REPO = Path(__file__).resolve().parents[1]
PHOTO_CAPTIONS = {
    "astronaut.png": "An astronaut standing in front of a flag.",
    "chelsea.png": "A small cat sitting on a red couch.",
    "coffee.png": "A white cup of coffee on a wooden table.",
    "horse.png": "A black horse standing in a field.",
    "rocket.jpg": "A rocket on the launch pad next to a tower.",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp()
    return {name: built(name, root) for name in ("causal_lm", "sd", "clip", "vilt")}


@pytest.fixture(scope="module")
def photo_folder(test_data, tmp_path_factory) -> Path:
    """An image folder (``load_dataset(folder)``: columns ``image`` and ``text``) of the shared photos, plus one
    caption no rule applies to."""
    folder = tmp_path_factory.mktemp("photos")
    lines = []
    for name, caption in [*PHOTO_CAPTIONS.items(), ("chelsea.png", "Hello there.")]:
        target = folder / f"{len(lines)}_{Path(name).stem}.png"
        Image.open(test_data / "images" / name).convert("RGB").resize((40, 40)).save(target)
        lines.append(json.dumps({"file_name": target.name, "text": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def captions_file(path: Path, captions: list[str]) -> Path:
    path.write_text("".join(json.dumps({"caption": c}) + "\n" for c in captions))
    return path


def t2i_flags(models) -> list[str]:
    return ["--t2i", str(models["sd"]), "--image-size", "32", "--num-inference-steps", "2"]


def load_fresh(folder: Path) -> datasets.Dataset:
    """``load_dataset(folder)``, bypassing datasets' cache: for a folder whose card declares dataset_info, the cache key
    is the card's name, features and sizes, not the files, so another folder of equal sizes can be served instead."""
    return datasets.load_dataset(str(folder), split="train", download_mode="force_redownload")


def rows_by_id(out: Path) -> dict[str, dict]:
    dataset = load_fresh(out)
    rows = {row["id"]: row for row in dataset}
    assert len(rows) == len(dataset), "duplicate ids"
    return rows


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_synthesize_end_to_end_with_images_rules_and_clip_filter(models, photo_folder, tmp_path,
                                                                 tiny_model_and_processor):
    from modeling_tripletclip.cli import main as tripletclip

    out = tmp_path / "triplets"
    code = tripletclip(["synthesize", "--dataset", str(photo_folder), "--caption-column", "text", "--image-column",
                        "image", "--rules", *t2i_flags(models), "--output_dir", str(out), "--seed", "5",
                        "--rows-per-shard", "4", "--clip-model", str(models["clip"]), "--keep-top-k", "2",
                        "--no-progress"])
    assert code == 0

    source = datasets.load_dataset(str(photo_folder), split="train")
    rows = rows_by_id(out)
    assert sorted(rows, key=int) == ["0", "1", "2", "3", "4"]  # "Hello there." has no rule-based negative
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["complete"] and manifest["written"] == 5 and manifest["rejected"] == {"no_rule_applies": 1}
    assert set(manifest["throughput_rows_per_second"]) == {"negative captions", "negative images", "clip scores"}

    from dataset_builders.synthesis.filters import CLIPScorer
    from dataset_builders.synthesis.t2i import ImageGenerator

    generator = ImageGenerator.from_pretrained(models["sd"], height=32, width=32, num_inference_steps=2)
    scorer = CLIPScorer.from_pretrained(models["clip"])
    for row_id, row in rows.items():
        index = int(row_id)
        assert row["caption"] == source[index]["text"]
        assert np.array_equal(pixels(row["image"]), pixels(source[index]["image"]))  # the photo, embedded
        expected = generate_negative(row["caption"], seed=row_seed(5, index, "rules"))
        assert (row["negative_caption"], row["negative_kind"]) == (expected.text, expected.kind)
        # the negative image regenerates alone from its caption and stored seed
        assert row["negative_image_seed"] == row_seed(5, index, "negative_image")
        again = generator.generate([row["negative_caption"]], [row["negative_image_seed"]])[0]
        assert_same_picture(row["negative_image"], again)
        score = scorer.triplet_scores([row["image"]], [row["caption"]], [row["negative_image"]],
                                      [row["negative_caption"]])[0]
        assert row["clip_score"] == pytest.approx(score, abs=1e-5)

    best = sorted(rows, key=lambda i: -rows[i]["clip_score"])[:2]
    filtered = load_fresh(out / "filtered")
    assert sorted(filtered["id"]) == sorted(best)

    # ... and the trainer's collator and model train on it
    import torch

    from dataset_builders.batches import TripletCollator, defer_image_decoding

    model, processor = tiny_model_and_processor
    collator = TripletCollator(processor)
    batch = collator(list(defer_image_decoding(load_fresh(out))))
    assert batch["negative_pixel_values"].shape[0] == 5 and not collator.skipped
    model.train()
    loss = model(**batch, return_loss=True).loss
    loss.backward()
    model.zero_grad()
    model.eval()
    assert torch.isfinite(loss)


def test_synthesize_with_an_sdxl_pipeline_at_sdxl_turbos_defaults(models, tmp_path, tmp_path_factory):
    """The default negative-image model is SDXL-turbo: a tiny SDXL pipeline, loaded through the same code path
    (`AutoPipelineForText2Image`), with its defaults (1 step, guidance 0; 512 px scaled down to 32 for the test),
    from the LLM's negative captions to TripletData, and the ViLT quality check (the default VQA model's class)."""
    from dataset_builders.synthesis.runner import SynthesisConfig
    from dataset_builders.synthesis.t2i import ImageGenerator

    sdxl = built("sdxl", tmp_path_factory.getbasetemp())
    defaults = {f.name: f.default for f in __import__("dataclasses").fields(SynthesisConfig)}
    assert (defaults["num_inference_steps"], defaults["guidance_scale"], defaults["image_size"]) == (1, 0.0, 512)
    generator = ImageGenerator.from_pretrained(sdxl, height=32, width=32)
    assert type(generator.pipeline).__name__ == "StableDiffusionXLPipeline"

    captions = ["A red cat sitting on a small table.", "A man riding a black horse.", "Two dogs on a green bed."]
    out = tmp_path / "sdxl"
    code = synthesis_main(["synthesize", "--dataset", str(captions_file(tmp_path / "c.jsonl", captions)),
                           "--caption_column", "caption", "--llm", str(models["causal_lm"]), "--max_new_tokens", "16",
                           "--min_length_ratio", "0", "--t2i", str(sdxl), "--image_size", "32",
                           "--vqa_model", str(models["vilt"]), "--num_questions", "2", "--output_dir", str(out),
                           "--no_progress"])
    assert code == 0
    rows = rows_by_id(out)
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["complete"] and len(rows) + sum(manifest["rejected"].values()) == 3
    for row_id, row in rows.items():
        assert row["image"].size == row["negative_image"].size == (32, 32)  # positives rendered too: no image column
        again = generator.generate([row["negative_caption"]], [row["negative_image_seed"]])[0]
        assert_same_picture(row["negative_image"], again)  # the row regenerates from its caption and seed
        assert row["vqa_score"] is None or 0 <= row["vqa_score"] <= 1


def test_llm_captions_rendered_positives_and_quality_check(models, tmp_path):
    captions = ["A dog to the left of the cat.", "two brown horses standing in a field under a cloudy sky",
                "a red cube on a blue table", "A person in a blue helmet rides a motorbike on a gravel path."]
    out = tmp_path / "triplets"
    code = synthesis_main([
        "synthesize", "--dataset", str(captions_file(tmp_path / "captions.jsonl", captions)),
        "--caption-column", "caption", "--llm", str(models["causal_lm"]), "--max-new-tokens", "12",
        "--max-retries", "1", *t2i_flags(models), "--output_dir", str(out), "--rows-per-shard", "3",
        "--vqa-model", str(models["vilt"]), "--num-questions", "2", "--no-progress",
    ])
    assert code == 0
    rows = rows_by_id(out)
    records = [json.loads(p.read_text()) for p in sorted((out / STATE_DIR / "shards").glob("*.json"))]
    rejected = {row: v for r in records for row, v in r["rejected"].items()}
    assert sorted([*rows, *rejected], key=int) == ["0", "1", "2", "3"]  # every row written or rejected, once
    for value in rejected.values():  # a rejection says why and keeps what the model answered
        assert value["reason"] and len(value["outputs"]) == 2
    from dataset_builders.synthesis.t2i import ImageGenerator

    generator = ImageGenerator.from_pretrained(models["sd"], height=32, width=32, num_inference_steps=2)
    for row_id, row in rows.items():
        assert row["caption"] == captions[int(row_id)] and row["negative_kind"] == "llm"
        assert row["negative_caption"] and row["negative_caption"] != row["caption"]
        # the positive image was rendered from the caption with its own seed
        assert row["image_seed"] == row_seed(0, int(row_id), "image")
        assert_same_picture(row["image"], generator.generate([row["caption"]], [row["image_seed"]])[0])
        assert row["vqa_score"] is None or 0 <= row["vqa_score"] <= 1
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["vqa"]["rows"] == len(rows)
    assert "vqa scores" in manifest["throughput_rows_per_second"]


def bad_input_cases(models, tmp_path):
    good = captions_file(tmp_path / "good.jsonl", ["A cat on a couch.", "A dog on a bed."])
    base = ["--caption-column", "caption", "--no-progress"]
    return {
        "missing caption column": (["--dataset", str(good), "--caption-column", "text", "--rules", *t2i_flags(models)],
                                   "no caption column 'text'; its columns are ['caption']"),
        "llm is not a causal LM": (["--dataset", str(good), *base, "--llm", str(models["sd"]), *t2i_flags(models)],
                                   "not a causal language model folder"),
        "llm is a CLIP model": (["--dataset", str(good), *base, "--llm", str(models["clip"]), *t2i_flags(models)],
                                "is a 'clip' model (CLIPModel), not a causal language model"),
        "t2i is not a pipeline": (["--dataset", str(good), *base, "--rules", "--t2i", str(models["causal_lm"])],
                                  "not a diffusers text-to-image pipeline folder"),
        "float16 on CPU": (["--dataset", str(good), *base, "--rules", *t2i_flags(models), "--dtype", "float16"],
                           "runs on GPUs only"),
        "no images at all": (["--dataset", str(good), *base, "--rules"], "TripletData needs images"),
        "missing input": (["--dataset", str(tmp_path / "nope.jsonl"), *base, "--rules", *t2i_flags(models)],
                          "Could not load the input"),
    }


@pytest.mark.parametrize("case", ["missing caption column", "llm is not a causal LM",
                                  "llm is a CLIP model", "t2i is not a pipeline", "float16 on CPU",
                                  "no images at all", "missing input"])
def test_bad_input_is_refused_before_generation(case, models, tmp_path, capsys):
    flags, message = bad_input_cases(models, tmp_path)[case]
    out = tmp_path / "out"
    assert synthesis_main(["synthesize", *flags, "--output_dir", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing was generated, not even the folder


def test_empty_captions_are_skipped_and_counted_not_fatal(models, tmp_path):
    captions = captions_file(tmp_path / "empty.jsonl", ["A cat on a couch.", "  ", "A dog on a bed."])
    out = tmp_path / "out"
    assert synthesis_main(["synthesize", "--dataset", str(captions), "--caption-column", "caption", "--rules",
                           *t2i_flags(models), "--no-progress", "--output_dir", str(out)]) == 0
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["rows"] == 3 and manifest["written"] == 2 and manifest["rejected"] == {"empty caption": 1}
    assert sorted(rows_by_id(out)) == ["0", "2"]


def test_output_folder_of_another_configuration_is_refused(models, tmp_path, capsys):
    flags = ["synthesize", "--dataset", str(captions_file(tmp_path / "c.jsonl", ["A cat on a couch."])),
             "--caption-column", "caption", "--rules", *t2i_flags(models), "--no-progress"]
    out = tmp_path / "out"
    assert synthesis_main([*flags, "--output_dir", str(out)]) == 0
    before = sorted(p.stat().st_mtime_ns for p in (out / "data").iterdir())
    assert synthesis_main([*flags, "--output_dir", str(out), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "made by a different synthesis configuration (config.seed: 0 there, 1 now)" in err
    assert "Rerun with the same options" in err
    assert sorted(p.stat().st_mtime_ns for p in (out / "data").iterdir()) == before
    assert synthesis_main([*flags, "--output_dir", str(out)]) == 0  # the same options: nothing left to do, fine
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert synthesis_main([*flags, "--output_dir", str(foreign)]) == 2
    assert "is not empty and was not made by `tripletclip synthesize`" in capsys.readouterr().err


def test_a_failing_row_is_recorded_and_retried_on_rerun(models, tmp_path, monkeypatch):
    """An exception inside the pipeline (here: a simulated out-of-memory error on one prompt) costs that row only."""
    from diffusers import StableDiffusionPipeline

    captions = ["A cat on a couch.", "A unicorn standing in a field.", "A dog on a bed.", "A red car.",
                "A man riding a bike."]
    flags = ["synthesize", "--dataset", str(captions_file(tmp_path / "c.jsonl", captions)), "--caption-column",
             "caption", "--rules", *t2i_flags(models), "--rows-per-shard", "2", "--no-progress"]
    original = StableDiffusionPipeline.__call__

    def out_of_memory_on_unicorns(self, prompt=None, **kwargs):  # no rule writes "unicorn" into a caption
        if any("unicorn" in p for p in prompt):
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, prompt=prompt, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(StableDiffusionPipeline, "__call__", out_of_memory_on_unicorns)
    assert synthesis_main([*flags, "--output_dir", str(out)]) == 1  # incomplete: rerun needed
    record = json.loads((out / STATE_DIR / "shards" / "00000.json").read_text())
    assert record["failed"] == {"1": {"stage": "images", "error": "RuntimeError: CUDA out of memory (simulated)"}}
    assert sorted(rows_by_id(out), key=int) == ["0", "2", "3", "4"]  # the others carried on
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["failed"] == 1

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", original)
    assert synthesis_main([*flags, "--output_dir", str(out)]) == 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / STATE_DIR / "shards").glob("*.json")}
    assert records["00000"]["attempts"] == 2 and records["00000"]["failed"] == {}
    assert records["00000"]["stages"]["images"]["rows"] == 1  # only the failed row was redone
    assert records["00001"]["attempts"] == 1 and records["00002"]["attempts"] == 1

    reference = tmp_path / "reference"
    assert synthesis_main([*flags, "--output_dir", str(reference)]) == 0
    # the rows of the failed batch were drawn one by one, not two by two: the same pictures up to rounding
    assert_same_rows(rows_by_id(out), rows_by_id(reference), exact_images=False)


def assert_same_rows(rows: dict[str, dict], expected: dict[str, dict], exact_images: bool = True) -> None:
    """Every row exactly once, with the same texts, ids, kinds and seeds, and the same pictures (bit for bit, or up
    to the rounding of another batch size)."""
    assert sorted(rows) == sorted(expected)
    for row_id, row in expected.items():
        other = rows[row_id]
        for column, value in row.items():
            if isinstance(value, Image.Image) and exact_images:
                assert np.array_equal(pixels(other[column]), pixels(value)), (row_id, column)
            elif isinstance(value, Image.Image):
                assert_same_picture(other[column], value)
            else:
                assert other[column] == value, (row_id, column)


@pytest.mark.slow
def test_sigkill_of_a_two_worker_run_then_resume(models, tmp_path):
    captions = [f"A {colour} {animal} sitting on a {size} table next to a {person}."
                for colour in ("red", "blue", "green") for animal in ("dog", "cat")
                for size in ("small", "large") for person in ("man", "woman")]
    flags = ["synthesize", "--dataset", str(captions_file(tmp_path / "c.jsonl", captions)), "--caption-column",
             "caption", "--llm", str(models["causal_lm"]), "--max-new-tokens", "16", "--min-length-ratio", "0",
             "--llm-batch-size", "2", *t2i_flags(models), "--rows-per-shard", "2", "--seed", "3", "--no-progress"]
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}

    def launch() -> subprocess.Popen:
        command = [sys.executable, "-m", "dataset_builders.synthesis.cli", *flags, "--workers", "2",
                   "--output_dir", str(out)]
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)

    process = launch()
    records = out / STATE_DIR / "shards"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if records.is_dir() and any(records.glob("*.json")):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read().decode()[-3000:]
    kill_all(process)  # the executor and every process it started, mid-run
    done = len(list(records.glob("*.json")))
    assert 1 <= done < 12 and not (out / STATE_DIR / "manifest.json").exists()

    process = launch()
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr.decode()[-3000:]
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 24
    resumed = {p.stem: json.loads(p.read_text())["attempts"] for p in records.glob("*.json")}
    assert len(resumed) == 12 and set(resumed.values()) == {1}  # no shard was generated twice after its record

    reference = tmp_path / "reference"  # uninterrupted, one process: the same rows, values and images
    assert synthesis_main([*flags, "--output_dir", str(reference)]) == 0
    killed_rows, reference_rows = rows_by_id(out), rows_by_id(reference)
    assert len(reference_rows) + sum(manifest["rejected"].values()) == 24
    # Texts, ids, kinds and seeds exactly; pictures up to float rounding (two processes' kernels may round a rare
    # pixel value the other way).
    assert_same_rows(killed_rows, reference_rows, exact_images=False)
    assert not [p for p in (out / "data").iterdir() if p.name.startswith(".")]  # no temporary files left
    shutil.rmtree(tmp_path / "reference")
