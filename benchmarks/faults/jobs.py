"""The jobs the fault harness interrupts: each with its documented command, its resume command, and how its result
is compared with an uninterrupted run's.

Every job runs the shipped command line in a subprocess (`tripletclip ...`, `train_accelerate.py`, two-process runs
through `accelerate launch`), so a SIGKILL hits the real process tree. :meth:`Job.compare` returns the number of
units of data lost (missing, duplicated or different rows; missing optimizer steps; a missing or different report
or staged file) and the problems found; :meth:`Job.untrusted` lists what an interrupted run left that a later run
might wrongly trust (it must be nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(num_processes: int) -> list[str]:
    """``accelerate launch`` for ``num_processes`` CPU processes (one machine), or plain Python for one."""
    if num_processes == 1:
        return [PYTHON]
    return [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(free_port())]


def base_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1", "ACCELERATE_USE_CPU": "1",
            "PYTHONPATH": str(REPO), **extra}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Inputs:
    """What the jobs read: a small world, the released layout's shards, a random tiny checkpoint."""

    world: Path
    shards: Path
    checkpoint: Path
    work: Path


class Job:
    key = ""
    title = ""
    processes = 1
    rerun = ""  # the documented resume command, as the README's table prints it
    holds_folder = True  # one live run at a time writes its output folder

    def __init__(self, inputs: Inputs):
        self.inputs = inputs

    def command(self, out: Path) -> list[str]:
        raise NotImplementedError

    def resume_command(self, out: Path) -> list[str]:
        return self.command(out)

    def env(self) -> dict[str, str]:
        return base_env()

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        raise NotImplementedError

    def untrusted(self, out: Path) -> list[str]:
        return []


def _rows_by_id(folder: Path, split: str = "train") -> dict[str, dict]:
    from dataset_builders import load_tripletdata

    dataset = load_tripletdata(folder, split=split).cast_column("image", _undecoded()).cast_column("negative_image", _undecoded())
    rows: dict[str, dict] = {}
    duplicates = 0
    for row in dataset:
        if row["id"] in rows:
            duplicates += 1
        rows[row["id"]] = {key: (value["bytes"] if isinstance(value, dict) else value) for key, value in row.items()}
    rows["__duplicates__"] = duplicates  # type: ignore[assignment]
    return rows


def _undecoded():
    import datasets

    return datasets.Image(decode=False)


def compare_rows(out: Path, reference: Path, *, exact_images: bool = True, split: str = "train"
                 ) -> tuple[int, list[str]]:
    """Rows missing, duplicated or different between two TripletData folders (by id)."""
    try:
        got = _rows_by_id(out, split)
    except Exception as error:  # an unreadable output loses everything
        expected = _rows_by_id(reference, split)
        return len(expected) - 1, [f"the output cannot be read: {type(error).__name__}: {error}"]
    expected = _rows_by_id(reference, split)
    duplicates = got.pop("__duplicates__")
    expected.pop("__duplicates__")
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    different = [key for key in set(got) & set(expected) if not _same_row(got[key], expected[key], exact_images)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} rows missing (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} unexpected rows (e.g. {extra[:3]})")
    if duplicates:
        problems.append(f"{duplicates} duplicated rows")
    if different:
        problems.append(f"{len(different)} rows differ (e.g. {sorted(different)[:3]})")
    return len(missing) + len(extra) + duplicates + len(different), problems


def _same_row(a: dict, b: dict, exact_images: bool) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        if key in ("image", "negative_image") and not exact_images:
            if not _same_picture(a[key], b[key]):
                return False
        elif a[key] != b[key]:
            return False
    return True


def _same_picture(a: bytes | None, b: bytes | None) -> bool:
    """Equal pictures up to float rounding (two processes' kernels may round a rare pixel the other way)."""
    if a is None or b is None:
        return a is b
    import io

    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB")).astype(int)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).astype(int)
    return x.shape == y.shape and np.abs(x - y).max() <= 2 and (x != y).mean() < 0.01


# ------------------------------------------------------------------------------------------------------ training


class Training(Job):
    steps = 12
    rerun = "the same command with --resume_from_checkpoint latest"

    def __init__(self, inputs: Inputs, processes: int = 1):
        super().__init__(inputs)
        self.processes = processes
        self.key = f"train-{processes}p"
        self.title = f"training, {processes} process{'es' if processes > 1 else ''}"

    def flags(self, out: Path) -> list[str]:
        return ["--output_dir", str(out), "--world_dir", str(self.inputs.world), "--max_train_steps",
                str(self.steps), "--train_batch_size", "16", "--checkpointing_steps", "3",
                "--checkpoints_total_limit", "2", "--logging_steps", "1", "--lr_warmup_steps", "4",
                "--eval_benchmarks", "", "--eval_before_training", "false", "--report_to", "jsonl",
                "--ddp_timeout", "60"]

    def command(self, out: Path) -> list[str]:
        return [*launch(self.processes), str(REPO / "train_accelerate.py"), *self.flags(out)]

    def resume_command(self, out: Path) -> list[str]:
        return [*self.command(out), "--resume_from_checkpoint", "latest"]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        return compare_training(out, reference, self.steps)

    def untrusted(self, out: Path) -> list[str]:
        from modeling_tripletclip.training.checkpoints import list_checkpoints

        problems = []
        for checkpoint in list_checkpoints(out):  # every folder a resume would consider must load
            for name in ("model.safetensors", "optimizer.bin", "scheduler.bin"):
                if not (checkpoint / name).is_file():
                    problems.append(f"{checkpoint.name} is listed as complete but has no {name}")
        if (out / "model.safetensors").exists() and not (out / "eval_results.json").exists():
            problems.append("a final model.safetensors without the rest of the final save")
        return problems


def _state_tensors(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _flatten(value, prefix=""):
    import torch

    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}/{index}")
    elif isinstance(value, torch.Tensor):
        yield prefix, value
    else:
        yield prefix, value


def _same_state(a, b) -> list[str]:
    import torch

    left, right = dict(_flatten(a)), dict(_flatten(b))
    if left.keys() != right.keys():
        return ["different keys"]
    differ = []
    for key in left:
        x, y = left[key], right[key]
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)):
                differ.append(key)
        elif x != y and not (isinstance(x, float) and x != x and y != y):
            differ.append(key)
    return differ


METRIC_VOLATILE = {"time", "train/samples_per_second"}


def _metrics(out: Path) -> dict[int, dict]:
    records = {}
    for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("step") is None or "train/loss" not in record:
            continue
        if record["step"] in records:
            records.setdefault("__duplicates__", []).append(record["step"])  # type: ignore[arg-type]
        records[record["step"]] = {k: v for k, v in record.items() if k not in METRIC_VOLATILE}
    return records


def compare_training(out: Path, reference: Path, steps: int) -> tuple[int, list[str]]:
    """Weights, optimizer, scheduler, RNG and data state of the final checkpoint, and the metrics, against an
    uninterrupted run: the number of optimizer steps whose effect differs (all of them when the state differs)."""
    from safetensors.torch import load_file

    problems = []
    final, expected = out / f"checkpoint-{steps}", reference / f"checkpoint-{steps}"
    if not (out / "model.safetensors").is_file() or not final.is_dir():
        return steps, ["the run did not finish (no final model or checkpoint)"]
    weights, reference_weights = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    if weights.keys() != reference_weights.keys() or any(not (weights[k] == reference_weights[k]).all()
                                                         for k in weights):
        problems.append("final weights differ")
    for name in ("optimizer.bin", "scheduler.bin"):
        differ = _same_state(_state_tensors(final / name), _state_tensors(expected / name))
        if differ:
            problems.append(f"{name} differs ({differ[:3]})")
    for state in sorted(expected.glob("data_state_rank*.json")) + [expected / "trainer_state.json"]:
        mine = final / state.name
        if not mine.is_file() or json.loads(mine.read_text()) != json.loads(state.read_text()):
            problems.append(f"{state.name} differs")
    metrics, reference_metrics = _metrics(out), _metrics(reference)
    duplicates = metrics.pop("__duplicates__", [])
    if duplicates:
        problems.append(f"metrics logged twice for steps {duplicates[:5]}")
    differing = [step for step in reference_metrics if metrics.get(step) != reference_metrics[step]]
    if differing:
        problems.append(f"metrics of {len(differing)} steps differ (e.g. {differing[:3]})")
    lost = steps if any("differs" in p and "metrics" not in p for p in problems) else len(differing) + len(duplicates)
    return lost, problems


# ----------------------------------------------------------------------------------------------------- synthesis


class Synthesis(Job):
    """`tripletclip synthesize` on datatrove's local executor: one worker, or two (a pool of two processes)."""

    rerun = "the same command"

    def __init__(self, inputs: Inputs, processes: int = 1):
        super().__init__(inputs)
        self.processes = processes
        self.key = f"synthesis-{processes}p"
        self.title = f"synthesis, {processes} worker{'s' if processes > 1 else ''}"

    def command(self, out: Path) -> list[str]:
        return [PYTHON, "-m", "modeling_tripletclip.cli", "synthesize", "--dataset", str(self.inputs.world / "train"),
                "--caption_column", "caption", "--image_column", "image", "--rules", "--rows_per_shard", "24",
                "--seed", "3", "--no_progress", "--workers", str(self.processes), "--output_dir", str(out)]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        from dataset_builders.synthesis.runner import STATE_DIR

        manifest = out / STATE_DIR / "manifest.json"
        if not manifest.is_file() or not json.loads(manifest.read_text()).get("complete"):
            return compare_rows(out, reference)[0] or 1, ["the run did not complete"]
        return compare_rows(out, reference)

    def untrusted(self, out: Path) -> list[str]:
        from dataset_builders.synthesis.runner import STATE_DIR

        return untrusted_shards(out, STATE_DIR + "/shards", "written")


def _readable_parquet(path: Path | None, rows: int | None) -> bool:
    try:
        import pyarrow.parquet as pq

        return path is not None and path.is_file() and (rows is None or pq.ParquetFile(path).metadata.num_rows == rows)
    except Exception:
        return False


def untrusted_shards(out: Path, ledger: str, rows_key: str) -> list[str]:
    """Ledger records (``NNNNN.json``) whose parquet shard is missing, unreadable or of another length."""
    problems = []
    folder = out / ledger
    for record in sorted(folder.glob("[0-9]*.json")) if folder.is_dir() else []:
        entry = json.loads(record.read_text())
        shards = sorted((out / "data").glob(f"*-{int(record.stem):05d}-of-*.parquet"))
        if not _readable_parquet(shards[0] if shards else None, entry.get(rows_key)):
            problems.append(f"{ledger}/{record.name} records a shard that is missing or incomplete")
    return problems


# ---------------------------------------------------------------------------------------------------- conversion


class Conversion(Job):
    key = "convert"
    title = "WebDataset conversion"
    rerun = "the same command"

    def command(self, out: Path) -> list[str]:
        return [PYTHON, "-m", "modeling_tripletclip.cli", "data", "convert-webdataset", "--dataset",
                str(self.inputs.shards), "--output_dir", str(out)]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        return compare_rows(out, reference)

    def untrusted(self, out: Path) -> list[str]:
        from dataset_builders.released_shards import CONVERSION_DIR

        return untrusted_shards(out, CONVERSION_DIR, "rows")


# --------------------------------------------------------------------------------------------------------- world


class World(Job):
    key = "world"
    title = "world generation"
    rerun = "the same command"
    sizes = ["--num_train", "1200", "--num_test", "48", "--sugarcrepe_per_kind", "6", "--num_winoground", "24",
             "--num_retrieval", "24"]

    def command(self, out: Path) -> list[str]:
        return [PYTHON, "-m", "modeling_tripletclip.cli", "data", "world", "--output_dir", str(out), "--seed", "5",
                *self.sizes]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        if not (out / "world.json").is_file():
            return 1, ["the world is not complete (no world.json)"]
        lost, problems = 0, []
        for part in ("train", "test"):
            part_lost, part_problems = compare_rows(out / part, reference / part, split=part)
            lost += part_lost
            problems += [f"{part}: {p}" for p in part_problems]
        for path in sorted(reference.rglob("*")):
            relative = path.relative_to(reference)
            if path.is_file() and relative.parts[0] in ("sugarcrepe", "winoground", "retrieval"):
                mine = out / relative
                if not mine.is_file() or digest(mine) != digest(path):
                    lost += 1
                    problems.append(f"{relative} differs or is missing")
        manifest, expected = json.loads((out / "world.json").read_text()), json.loads(
            (reference / "world.json").read_text())
        if manifest.get("config") != expected.get("config") or manifest.get("counts") != expected.get("counts"):
            problems.append("world.json describes another world")
            lost += 1
        return lost, problems


# ------------------------------------------------------------------------------------------------------- reports


class Report(Job):
    key = "report"
    title = "evaluation report"
    rerun = "the same command"

    def command(self, out: Path) -> list[str]:
        return [PYTHON, "-m", "modeling_tripletclip.cli", "evaluate", "--model", str(self.inputs.checkpoint),
                "--world", str(self.inputs.world), "--output_dir", str(out), "--no_progress"]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        mine, expected = out / "report.json", reference / "report.json"
        if not mine.is_file():
            return 1, ["no report"]
        got, want = json.loads(mine.read_text()), json.loads(expected.read_text())
        if got["results"] != want["results"] or got.get("counts") != want.get("counts"):
            return 1, ["the report differs from an uninterrupted run's"]
        return 0, []

    def untrusted(self, out: Path) -> list[str]:
        problems = []
        for path in sorted(out.glob("report*")) if out.is_dir() else []:
            if path.suffix == ".json":
                try:
                    json.loads(path.read_text())
                except ValueError:
                    problems.append(f"{path.name} is half-written")
        return problems


# -------------------------------------------------------------------------------------------------- push staging


class PushStaging(Job):
    key = "push"
    title = "push staging"
    rerun = "the same command"

    def command(self, out: Path) -> list[str]:
        return [PYTHON, "-m", "modeling_tripletclip.cli", "push", "model", "--model_name_or_path",
                str(self.inputs.checkpoint), "--repo_id", "you/tripletclip-faults", "--dry_run", "--output_dir",
                str(out)]

    def compare(self, out: Path, reference: Path) -> tuple[int, list[str]]:
        from modeling_tripletclip.hub.push import STAGED_RECORD

        if not (out / STAGED_RECORD).is_file():
            return 1, ["the staging is not complete"]
        files = {p.relative_to(reference): digest(p) for p in reference.rglob("*") if p.is_file()}
        mine = {p.relative_to(out): digest(p) for p in out.rglob("*") if p.is_file()}
        different = [str(k) for k in files if mine.get(k) != files[k] and k.name != STAGED_RECORD]
        extra = [str(k) for k in set(mine) - set(files)]
        problems = [f"{len(different)} staged files differ or are missing ({different[:3]})"] if different else []
        problems += [f"unexpected files {extra[:3]}"] if extra else []
        return len(different) + len(extra), problems

    def untrusted(self, out: Path) -> list[str]:
        from modeling_tripletclip.hub.push import STAGED_RECORD, staged_files_complete

        if (out / STAGED_RECORD).is_file() and not staged_files_complete(out):
            return ["the staging record lists files that are missing or different"]
        return []


def all_jobs(inputs: Inputs) -> list[Job]:
    return [Training(inputs, 1), Training(inputs, 2), Synthesis(inputs, 1), Synthesis(inputs, 2), Conversion(inputs),
            World(inputs), Report(inputs), PushStaging(inputs)]
