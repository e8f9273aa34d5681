"""The one-GPU check: what the GPU path does, measured in at most 8 minutes, nothing downloaded.

    bash benchmarks/gpu_check.sh              # on a machine with one CUDA GPU
    bash benchmarks/gpu_check.sh --dry_run    # anywhere: the same steps at toy sizes on the CPU (the tests run it)

Writes ``gpu.json`` into ``--output_dir`` (default ``benchmarks/results``) with:

- **step**: samples/s of our ViT-B/32 triplet training step (bf16 autocast, B = 256 triplets: one pass per tower over
  the concatenated batch) against an open_clip-style step on the same GPU in the same process (two passes per tower,
  positives then negatives, the official TripletCLIP loss), timed alternately; goal ratio >= 1.1;
- **data wait**: the share of a training step spent waiting for data, with ``--dataloader_num_workers 8`` on
  photo-like JPEG TripletData (500x375, quality 90, as CC3M stores its images); goal <= 0.10;
- **memory**: peak GPU memory of one step per triplet, with and without gradient checkpointing;
- **evaluation**: SugarCrepe-sized evaluation throughput (the real annotation files, stand-in images): images/s and
  captions/s;
- **runs**: a 2-step ``accelerate launch train_accelerate.py --mixed_precision bf16`` and ``pytest -m gpu``, each with
  its exit status.

Models are built from configurations (ViT-B/32 and tiny presets), tokenizers trained on the spot, data generated on
the spot: the check needs no network. In the dry mode the sizes are toy sizes and the figures mean nothing: it shows
that every step still runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.perf import data_pipeline, evaluation_speed, fixtures, train_step
from dataset_builders.utils import atomic
from dataset_builders.utils.options import Command, run_command

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_FILE = "gpu.json"
GOAL_STEP_RATIO = 1.1
GOAL_WAIT = 0.10


@dataclass
class GpuCheckOptions:
    """Options of the one-GPU check."""

    dry_run: bool = field(default=False, metadata={
        "help": "run every step at toy sizes on the CPU (figures mean nothing; checks the script runs)"})
    output_dir: str = field(default=str(REPO_ROOT / "benchmarks" / "results"), metadata={
        "help": "where gpu.json goes"})
    batch_size: int = field(default=256, metadata={"help": "triplets per training step (ViT-B/32)"})
    work_dir: str | None = field(default=None, metadata={
        "help": "data generated for the check (default: a temporary folder)"})

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be at least 1 (got {self.batch_size})")
        if not self.dry_run and not torch.cuda.is_available():
            raise ValueError("No CUDA device is visible to torch here. Run the check on a GPU machine, or add "
                             "--dry_run to run its steps on the CPU.")


@dataclass(frozen=True)
class Sizes:
    device: str
    preset: str
    batch_size: int
    step_repeats: int
    step_seconds: float
    jpeg_rows: int
    wait_steps: int
    wait_batch_size: int
    wait_workers: int
    eval_items_per_subset: int | None

    @classmethod
    def for_options(cls, options: GpuCheckOptions) -> "Sizes":
        if options.dry_run:
            return cls("cpu", "tiny", 4, 2, 10, 48, 4, 8, 2, 3)
        return cls("cuda", "vit-b-32", options.batch_size, 10, 60, 4096, 30, options.batch_size, 8, None)


def measure_step(sizes: Sizes, tokenizer, rows: list[dict], gradient_checkpointing: bool) -> dict:
    """Our step against the two-pass step (one model, one optimizer), and the peak memory per triplet on a GPU."""
    setting = train_step.StepSetting(sizes.preset, sizes.batch_size, gradient_checkpointing, repeats=sizes.step_repeats,
                                     warmup=1, device=sizes.device, precision="bf16", max_seconds=sizes.step_seconds)
    figures = train_step.measure(setting, tokenizer, rows)
    detail = figures[0].detail
    out = {
        "setting": setting.title,
        "ours_samples_per_s": detail["tripletclip_samples_per_s"],
        "two_pass_samples_per_s": detail["two_pass_samples_per_s"],
        "ratio": detail["tripletclip_samples_per_s"] / detail["two_pass_samples_per_s"],
        "goal": f">= {GOAL_STEP_RATIO}",
    }
    out["met"] = out["ratio"] >= GOAL_STEP_RATIO
    if "tripletclip_peak_step_gib" in detail:
        out["peak_mib_per_triplet"] = detail["tripletclip_peak_step_gib"] * 1024 / sizes.batch_size
    return out


def measure_evaluation(sizes: Sizes, work_dir: Path) -> dict:
    """Images/s and captions/s of encoding SugarCrepe's distinct images and captions (what an evaluation does)."""
    from modeling_tripletclip.encoding import CLIPEncoder, image_source_from_file
    from modeling_tripletclip.presets import create_model_and_processor

    annotations, images = evaluation_speed.prepare(evaluation_speed.default_annotations(), work_dir,
                                                   sizes.eval_items_per_subset)
    captions = evaluation_speed.unique_captions(annotations)
    names = sorted(evaluation_speed.unique_images(annotations))
    torch.manual_seed(0)
    model, processor = create_model_and_processor(sizes.preset, corpus=captions)
    model.to(sizes.device).eval()
    encoder = CLIPEncoder(model, processor, progress=False)
    encoder.encode_texts(captions[:8])  # warm-up
    sync = torch.cuda.synchronize if sizes.device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    encoder.encode_images([image_source_from_file(images / name) for name in names])
    sync()
    image_seconds = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode_texts(captions)
    sync()
    caption_seconds = time.perf_counter() - start
    return {"images": len(names), "captions": len(captions), "images_per_s": len(names) / image_seconds,
            "captions_per_s": len(captions) / caption_seconds}


def measure_wait(sizes: Sizes, captions: list[str], work_dir: Path) -> dict:
    """The trainer on photo-like JPEG TripletData, its data loader with ``wait_workers`` workers."""
    jpegs = fixtures.photo_triplets(work_dir, (500, 375), sizes.jpeg_rows, captions)
    figure = data_pipeline.measure_wait(None, sizes.wait_steps, sizes.wait_batch_size, dataset=jpegs,
                                        num_workers=sizes.wait_workers, preset=sizes.preset,
                                        env={"ACCELERATE_MIXED_PRECISION": "bf16"})
    return {"wait_fraction": figure.value, "num_workers": sizes.wait_workers, "steps": sizes.wait_steps,
            "batch_size": sizes.wait_batch_size, "goal": f"<= {GOAL_WAIT}", "met": figure.value <= GOAL_WAIT}


def _run(command: list[str], timeout: float, env: dict | None = None) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})
        code, tail = done.returncode, (done.stdout + done.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        code, tail = None, f"timed out after {timeout:.0f} s"
    return {"command": " ".join(command), "returncode": code, "seconds": time.perf_counter() - start,
            "passed": code == 0, "output_tail": tail}


def run_checks(sizes: Sizes, work_dir: Path) -> dict:
    """Every measurement of the check, in order; each is recorded as it finishes."""
    started = time.perf_counter()
    captions = evaluation_speed.unique_captions(evaluation_speed.default_annotations())
    tokenizer = fixtures.tokenizer_for(captions, sizes.preset)
    jpegs = fixtures.photo_triplets(work_dir, (500, 375), max(sizes.batch_size, 8), captions)
    rows = fixtures.load_rows(jpegs, max(sizes.batch_size, 8)).rows
    results: dict = {"device": torch.cuda.get_device_name(0) if sizes.device == "cuda" else "cpu (dry run)",
                     "dry_run": sizes.device == "cpu", "torch": torch.__version__}
    results["step"] = measure_step(sizes, tokenizer, rows, gradient_checkpointing=False)
    checkpointed = measure_step(sizes, tokenizer, rows, gradient_checkpointing=True)
    results["memory"] = {"peak_mib_per_triplet": results["step"].get("peak_mib_per_triplet"),
                         "peak_mib_per_triplet_gradient_checkpointing": checkpointed.get("peak_mib_per_triplet"),
                         "note": None if sizes.device == "cuda" else "GPU memory is not measured on the CPU"}
    results["data_wait"] = measure_wait(sizes, captions, work_dir)
    results["evaluation"] = measure_evaluation(sizes, work_dir)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "bf16", "--dynamo_backend", "no", *(["--cpu"] if sizes.device == "cpu" else []),
              "train_accelerate.py", "--dataset", str(jpegs), "--preset", sizes.preset, "--max_train_steps", "2",
              "--train_batch_size", "8", "--eval_benchmarks", "", "--eval_before_training", "false",
              "--output_dir", str(work_dir / "run")]
    results["runs"] = {"train_bf16_2_steps": _run(launch, timeout=240),
                       "pytest_gpu": _run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], timeout=240)}
    # pytest exits 5 when every GPU test is deselected or skipped: on the CPU that is the expected outcome.
    gpu_tests = results["runs"]["pytest_gpu"]
    gpu_tests["passed"] = gpu_tests["returncode"] == 0 or (sizes.device == "cpu" and gpu_tests["returncode"] == 5)
    results["seconds"] = time.perf_counter() - started
    return results


def _run_check(options: GpuCheckOptions) -> int:
    sizes = Sizes.for_options(options)
    with tempfile.TemporaryDirectory(prefix="tripletclip-gpu-check-") as tmp:
        work_dir = Path(options.work_dir) if options.work_dir else Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        results = run_checks(sizes, work_dir)
    path = atomic.write_json(Path(options.output_dir) / RESULT_FILE, results, indent=1)
    step, wait, evaluation = results["step"], results["data_wait"], results["evaluation"]
    print(f"{results['device']}: step {step['ours_samples_per_s']:.1f} samples/s vs two passes "
          f"{step['two_pass_samples_per_s']:.1f} (ratio {step['ratio']:.2f}, goal >= {GOAL_STEP_RATIO}); data wait "
          f"{wait['wait_fraction']:.3f} (goal <= {GOAL_WAIT}); evaluation {evaluation['images_per_s']:.0f} images/s, "
          f"{evaluation['captions_per_s']:.0f} captions/s; runs: "
          + ", ".join(f"{name} {'passed' if run['passed'] else 'FAILED'}" for name, run in results["runs"].items())
          + f"; {results['seconds']:.0f} s. Written to {path}")
    return 0 if all(run["passed"] for run in results["runs"].values()) else 1


COMMAND = Command("gpu_check", GpuCheckOptions, _run_check, help="the one-GPU check (gpu.json)", description=__doc__)


def main(argv: list[str] | None = None) -> int:
    return run_command(COMMAND, argv, prog="python -m benchmarks.gpu_check")


if __name__ == "__main__":
    sys.exit(main())
