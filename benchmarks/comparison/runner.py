"""Running the comparison: the world, the starting weights (the shared CLIP-pretrained base under fine-tuning, the
default protocol; one random model per seed from scratch), one training run per (objective, seed, batch), each
through the shipped trainer (`modeling_tripletclip.training.train`), then the held-out evaluation.

Runs are independent processes (one thread each), several at a time, and each leaves ``result.json`` (written
atomically) in its own folder: an interrupted comparison, rerun with the same settings, redoes only the runs that
have no result.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from dataset_builders.utils import atomic

from .design import ComparisonSettings, RunSpec

logger = logging.getLogger("tripletclip.compare")

RESULT_FILE = "result.json"
SIMILARITY_FILE = "similarity.npz"
INVOCATIONS_FILE = "invocations.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[2]


def prepare_world(settings: ComparisonSettings, work_dir: Path, progress: bool = True) -> Path:
    """Generate (or reuse: same configuration, same bytes) the world every run trains and is evaluated on."""
    from dataset_builders.world import generate_world

    config = settings.world_config()
    world_dir = work_dir / f"world-n{config['num_train']}-seed{config['seed']}"
    generate_world(world_dir, num_train=config["num_train"], seed=config["seed"], image_size=config["image_size"],
                   progress=progress, overwrite=True, num_proc=min(2, os.cpu_count() or 1),
                   **{k: v for k, v in config.items() if k not in ("num_train", "seed", "image_size")})
    return world_dir


def prepare_validation_world(settings: ComparisonSettings, work_dir: Path, progress: bool = True) -> Path | None:
    """The validation world of ``settings`` (same seed and rules as the training world, held-out scenes of its own,
    no training part), generated or reused; None when the settings have none. Every choice is read on it."""
    from dataset_builders.world import generate_world

    config = settings.validation_world_config()
    if config is None:
        return None
    path = work_dir / f"validation-world-seed{config['seed']}"
    generate_world(path, progress=progress, overwrite=True, **config)
    return path


def prepare_initial_model(settings: ComparisonSettings, world_dir: Path, seed: int, work_dir: Path) -> Path:
    """Save the random initial weights of ``seed`` (and the processor): every objective starts from them.

    The tokenizer is trained on the world's training captions and negative captions (deterministic, so equal for
    every seed).
    """
    import torch

    from dataset_builders.sources import load_tripletdata
    from modeling_tripletclip.presets import create_model_and_processor

    path = work_dir / "initial-models" / f"seed{seed}"
    stamp = path / "comparison_model.json"
    wanted = {"seed": seed, "model": settings.model_overrides()}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return path
    dataset = load_tripletdata(world_dir / "train", split="train").select_columns(["caption", "negative_caption"])
    corpus = [text for row in dataset for text in (row["caption"], row["negative_caption"]) if text]
    torch.manual_seed(seed)
    model, processor = create_model_and_processor("tiny", corpus=corpus, **settings.model_overrides())
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    atomic.write_json(stamp, wanted)
    return path


BASE_FILE = "base.json"


def prepare_base(settings: ComparisonSettings, world_dir: Path, work_dir: Path,
                 validation_dir: Path | None = None) -> Path:
    """The fine-tuning protocol's shared base: the tiny model trained by the shipped trainer with the plain CLIP loss on
    the world's positive pairs only (the CLIP objective never reads a negative), evaluated every ``base_eval_steps``
    on the validation world's SugarCrepe and Winoground formats (on the test ones when there is no validation world).
    Built once and reused; an interrupted build resumes from its last checkpoint.

    Writes ``base.json`` beside it: the settings, the validation scores at every evaluation, the first step at which
    every ``base_criterion`` score was reached (None if never), the final model's scores on the test benchmarks, the
    training loss (last logged value and the mean of the last quarter of the logs) and the passes over the training
    scenes.
    """
    from dataset_builders.world import WorldLayout
    from modeling_tripletclip.evaluation import evaluate_model, load_model_and_processor
    from modeling_tripletclip.training import TrainingConfig, train

    path = work_dir / "base"
    record_path = path / BASE_FILE
    wanted = settings.base_settings()
    if record_path.is_file() and json.loads(record_path.read_text()).get("settings") == wanted:
        return path
    initial = prepare_initial_model(settings, world_dir, settings.base_seed, work_dir)
    steps = settings.base_max_train_steps
    config = TrainingConfig(
        output_dir=str(path), seed=settings.base_seed, model_name_or_path=str(initial), loss_type="clip",
        dataset="world", world_dir=str(world_dir), world_num_train=settings.world_num_train,
        train_batch_size=settings.base_batch_size, max_train_steps=steps, learning_rate=settings.learning_rate,
        lr_warmup_steps=settings.lr_warmup_steps, checkpointing_steps=max(1, min(500, steps // 4)),
        checkpoints_total_limit=1, logging_steps=max(1, min(25, steps // 4)), report_to="jsonl",
        eval_steps=settings.base_eval_steps, eval_benchmarks="sugarcrepe,winoground", eval_before_training=False,
        eval_world_dir=str(validation_dir) if validation_dir else None,
    )
    config = continue_or_start(config)
    logger.info("Pretraining the shared base: %d steps of the CLIP loss (batch %d) in %s", steps,
                settings.base_batch_size, path)
    train(config)
    records = _logged(path)
    evaluations = {r["step"]: {k[len("eval/"):]: v for k, v in r.items() if k.startswith("eval/")}
                   for r in records if any(k.startswith("eval/") for k in r)}
    met = next((step for step, scores in sorted(evaluations.items())
                if all(scores.get(name, float("-inf")) >= bound for name, bound in settings.base_criterion)), None)
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    if met is None:
        logger.warning("The base did not meet the plateau criterion %s in %d steps: the fine-tuning comparison "
                       "starts from a base still on the plateau.", dict(settings.base_criterion), steps)
    model, processor = load_model_and_processor(str(path))
    tests = [b for b in settings.eval_benchmarks if b != "similarity"]
    test_scores = evaluate_model(model, processor, WorldLayout(world_dir).benchmark_paths(tests), progress=False)
    last_quarter = losses[-max(1, len(losses) // 4):]
    atomic.write_json(record_path, {
        "settings": wanted, "criterion": dict(settings.base_criterion), "criterion_met_at_step": met,
        "criterion_read_on": "validation world" if validation_dir else "test benchmarks",
        "evaluations": {str(step): scores for step, scores in sorted(evaluations.items())},
        "test": test_scores,
        "final_train_loss": losses[-1] if losses else None,
        "train_loss_last_quarter_mean": sum(last_quarter) / len(last_quarter) if losses else None,
        "passes_over_training_scenes": round(steps * settings.base_batch_size / settings.world_num_train, 2),
    })
    return path


SELECTION_FILE = "selection.json"


def select_finetune_learning_rate(settings: ComparisonSettings, world_dir: Path, validation_dir: Path, base: Path,
                                  work_dir: Path, jobs: int = 2, progress: bool = True) -> dict:
    """Choose the fine-tuning learning rate on the CLIP baseline alone, on the validation world: one CLIP fine-tuning
    run from the base per candidate (seed ``base_seed``, the comparison's batch and steps, the shipped trainer), scored
    by the validation SugarCrepe overall accuracy; the best wins (ties: the smaller rate). No other objective is
    trained and no test benchmark is read. Writes and returns ``selection/selection.json``; reused when present."""
    import dataclasses

    path = work_dir / "selection"
    wanted = settings.selection_settings()
    previous = load_selection_record(work_dir)
    if previous is not None and previous.get("settings") == wanted:
        return previous
    run = RunSpec("clip", settings.base_seed)
    trials = {rate: (dataclasses.replace(settings, finetune_learning_rate=rate), path / f"clip-lr{rate:g}")
              for rate in settings.finetune_learning_rate_candidates}
    _run_many([(trial, run, world_dir, base, run_dir, validation_dir) for trial, run_dir in trials.values()
               if load_result(run_dir, trial) is None],
              jobs, progress, "choosing the fine-tuning learning rate (CLIP only, validation)")
    results = {rate: load_result(run_dir, trial) for rate, (trial, run_dir) in trials.items()}
    scores = {rate: results[rate]["metrics"]["sugarcrepe"]["overall"] for rate in results}
    chosen = max(sorted(scores), key=lambda rate: scores[rate])
    record = {
        "settings": wanted, "criterion": "validation SugarCrepe overall (mean of the 7 kinds), CLIP only",
        "chosen_learning_rate": chosen,
        "candidates": {f"{rate:g}": {"validation": results[rate]["metrics"],
                                     "final_train_loss": results[rate].get("final_train_loss")}
                       for rate in sorted(results)},
    }
    atomic.write_json(path / SELECTION_FILE, record)
    return record


def _logged(run_dir: Path) -> list[dict]:
    """The trainer's logged records of a run (``metrics.jsonl``)."""
    from modeling_tripletclip.training.tracking import METRICS_FILE

    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines() if line.strip()]


def load_base_record(work_dir: Path) -> dict | None:
    path = Path(work_dir) / "base" / BASE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_selection_record(work_dir: Path) -> dict | None:
    path = Path(work_dir) / "selection" / SELECTION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def training_config(settings: ComparisonSettings, run: RunSpec, world_dir: Path, initial_model: Path,
                    output_dir: Path, eval_world_dir: Path | None = None):
    """The trainer configuration of one run: only the objective and the batch differ between objectives (and,
    fine-tuning, the learning rate is the fine-tuning one for all of them). ``eval_world_dir``: evaluate on that
    world's benchmarks (the validation world, when choosing settings) instead of the training world's test ones."""
    from modeling_tripletclip.training import TrainingConfig

    return continue_or_start(TrainingConfig(
        output_dir=str(output_dir),
        seed=run.seed,
        model_name_or_path=str(initial_model),
        loss_type=run.loss_type,
        cyclip_in_modal_weight=run.cyclip_weights[0],
        cyclip_cross_modal_weight=run.cyclip_weights[1],
        dataset="world",
        world_dir=str(world_dir),
        world_num_train=settings.world_num_train,
        train_batch_size=settings.batch_size * run.batch_multiplier,
        max_train_steps=settings.max_train_steps,
        learning_rate=settings.finetune_learning_rate if settings.protocol == "finetune" else settings.learning_rate,
        lr_warmup_steps=settings.lr_warmup_steps,
        checkpointing_steps=min(settings.max_train_steps, 200),
        checkpoints_total_limit=1,
        logging_steps=max(1, min(25, settings.max_train_steps // 4)),
        report_to="jsonl",
        eval_benchmarks=",".join(b for b in settings.eval_benchmarks if b not in ("tripletdata", "similarity"))
        if eval_world_dir is None else "sugarcrepe,winoground",
        eval_before_training=False,
        eval_world_dir=str(eval_world_dir) if eval_world_dir else None,
    ))


def continue_or_start(config):
    """``config`` set to continue the run already in its folder from its last checkpoint when that run has the same
    configuration (an interrupted comparison loses at most one checkpoint interval of a run), else to start it over
    (a run killed before its first checkpoint, or one made with other settings)."""
    import dataclasses

    from modeling_tripletclip.training.checkpoints import list_checkpoints, output_folder

    same = output_folder(config, config.output_dir).state() == "same"
    if same and list_checkpoints(config.output_dir):
        return dataclasses.replace(config, resume_from_checkpoint="latest", overwrite_output_dir=False)
    return dataclasses.replace(config, resume_from_checkpoint=None, overwrite_output_dir=True)


def run_one(settings: ComparisonSettings, run: RunSpec, world_dir: Path, initial_model: Path, run_dir: Path,
            eval_world_dir: Path | None = None) -> dict:
    """Train one run with the shipped trainer, evaluate it on the held-out test triplets (TripletData benchmark and
    similarity analysis, sharing one encoding pass), and write ``result.json`` and ``similarity.npz``.

    With ``eval_world_dir`` (choosing settings) the run is evaluated on that world's SugarCrepe and Winoground
    formats only, and the test triplets are not read."""
    import numpy as np

    from modeling_tripletclip.evaluation import evaluate_model_detailed, load_model_and_processor
    from modeling_tripletclip.training import train

    started = time.time()
    config = training_config(settings, run, world_dir, initial_model, run_dir, eval_world_dir)
    result = train(config)
    train_seconds = time.time() - started
    metrics: dict[str, dict[str, float]] = dict(next(iter(result.eval_results.values())) or {})

    if eval_world_dir is None:
        model, processor = load_model_and_processor(str(run_dir))
        test = {name: world_dir / "test" for name in ("tripletdata", "similarity")
                if name in settings.eval_benchmarks or name == "similarity"}
        detailed = evaluate_model_detailed(model, processor, test, progress=False)
        for name, outcome in detailed.items():
            metrics[name] = outcome.metrics
        np.savez(run_dir / SIMILARITY_FILE, **detailed["similarity"].details)
    losses = [r["train/loss"] for r in _logged(run_dir) if "train/loss" in r]

    images = settings.images_per_step(run)
    record = {
        "run": asdict(run),
        "run_name": run.run_name,
        "config_name": run.config_name,
        "metrics": metrics,
        "steps": result.steps,
        "batch_size": config.train_batch_size,
        "images_per_step": images,
        "images_seen": images * result.steps,
        "passes_over_training_scenes": round(result.steps * config.train_batch_size / settings.world_num_train, 2),
        "final_train_loss": losses[-1] if losses else None,
        "evaluated_on": "validation world" if eval_world_dir else "test benchmarks",
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.time() - started, 1),
        "skipped_rows": result.skipped,
        "settings": settings.to_dict(),
    }
    atomic.write_json(run_dir / RESULT_FILE, record)
    return record


def load_result(run_dir: Path, settings: ComparisonSettings) -> dict | None:
    """A finished run's record, or None when the run is missing, unfinished or made with other settings."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("settings") == settings.to_dict() else None


def finished_runs(settings: ComparisonSettings, work_dir: Path) -> list[dict]:
    """The records of the runs of ``settings`` already finished in ``work_dir``, in training order."""
    records = (load_result(Path(work_dir) / "runs" / run.run_name, settings) for run in settings.runs())
    return [record for record in records if record is not None]


def _worker_command(settings: ComparisonSettings, run: RunSpec, world_dir: Path, initial_model: Path,
                    run_dir: Path, eval_world_dir: Path | None = None) -> list[str]:
    payload = json.dumps({"settings": settings.to_dict(), "run": asdict(run), "world_dir": str(world_dir),
                          "initial_model": str(initial_model), "run_dir": str(run_dir),
                          "eval_world_dir": str(eval_world_dir) if eval_world_dir else None})
    return [sys.executable, "-m", "benchmarks.comparison.worker", payload]


#: One run to train: (settings, run, training world, starting model, run folder, evaluation world or None).
Job = tuple[ComparisonSettings, RunSpec, Path, Path, Path, "Path | None"]


def _run_many(jobs_todo: list[Job], jobs: int, progress: bool, description: str, total: int | None = None,
              on_done=None) -> None:
    """Train ``jobs_todo``, ``jobs`` at a time, each in its own one-thread process (``jobs=0``: one after another in
    this process); ``on_done(job)`` after each. A failed run stops everything with the tail of its log."""
    from tqdm.auto import tqdm

    total = len(jobs_todo) if total is None else total
    bar = tqdm(total=total, initial=total - len(jobs_todo), desc=description, disable=not progress)
    if jobs <= 0:
        for job in jobs_todo:
            job[4].mkdir(parents=True, exist_ok=True)
            run_one(*job)
            if on_done:
                on_done(job)
            bar.update(1)
        bar.close()
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

    def launch(job: Job) -> Job:
        run, run_dir = job[1], job[4]
        run_dir.mkdir(parents=True, exist_ok=True)
        log = run_dir / "train.log"
        with log.open("w") as handle:
            code = subprocess.call(_worker_command(*job), stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   env=env)
        if code != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
            raise RuntimeError(f"Run {run.run_name} failed (exit code {code}); its log is {log}:\n{tail}")
        return job

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(launch, job) for job in jobs_todo]
        for future in as_completed(futures):
            job = future.result()
            if on_done:
                on_done(job)
            bar.set_postfix_str(job[4].name)
            bar.update(1)
    bar.close()


def run_all(settings: ComparisonSettings, work_dir: Path, jobs: int = 2, progress: bool = True,
            select_only: bool = False, results_dir: Path | None = None) -> list[dict]:
    """Every run of ``settings`` (finished ones are reused), ``jobs`` at a time, each in its own one-thread process
    (``jobs=0``: one after another in this process). Returns the run records in the order of ``settings.runs()``.

    Fine-tuning: the base is built (or reused) first, and, with a validation world, the learning-rate selection
    (CLIP only) is run (or reused) and must agree with ``settings.finetune_learning_rate``, the value frozen before
    the comparison; ``select_only`` stops after it and returns no record.

    ``results_dir``: where the results are kept (committed); the base, the selection and the finished runs saved
    there with the same settings (`save_for_reuse`) are adopted first, so that a comparison continues on another
    machine; each run that finishes is saved there at once."""
    settings.validate()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    adopt_saved(settings, work_dir, results_dir)
    world_dir = prepare_world(settings, work_dir, progress=progress)
    if settings.protocol == "finetune":
        validation_dir = prepare_validation_world(settings, work_dir, progress=progress)
        base = prepare_base(settings, world_dir, work_dir, validation_dir)
        initial = {seed: base for seed in settings.seeds}
        selection = None if validation_dir is None else select_finetune_learning_rate(
            settings, world_dir, validation_dir, base, work_dir, jobs, progress)
        if results_dir is not None:  # the base and the selection, as soon as they exist
            save_for_reuse(settings, [], work_dir, results_dir)
        if selection is not None:
            if select_only:
                return []
            if selection["chosen_learning_rate"] != settings.finetune_learning_rate:
                raise ValueError(
                    f"The validation selection chose a fine-tuning learning rate of "
                    f"{selection['chosen_learning_rate']:g} ({work_dir / 'selection' / SELECTION_FILE}), but the "
                    f"settings freeze {settings.finetune_learning_rate:g}. Write the chosen value into "
                    f"ComparisonSettings.full('finetune') (benchmarks/comparison/design.py) and benchmarks/README.md, "
                    f"commit them, then run the comparison.")
        elif select_only:
            return []
    else:
        initial = {seed: prepare_initial_model(settings, world_dir, seed, work_dir) for seed in settings.seeds}
    runs = settings.runs()
    run_dirs = {run: work_dir / "runs" / run.run_name for run in runs}
    records = {run: load_result(run_dirs[run], settings) for run in runs}
    todo = [run for run in runs if records[run] is None]
    if len(todo) < len(runs):
        logger.info("Reusing %d finished run(s) from %s", len(runs) - len(todo), work_dir / "runs")

    started = time.time()
    mark = [started]

    def done(job: Job) -> None:
        # The ledger grows by one entry per finished run, so that a stopped invocation still counts its time.
        records[job[1]] = load_result(job[4], settings)
        now = time.time()
        with (work_dir / INVOCATIONS_FILE).open("a") as handle:
            handle.write(json.dumps({"invocation": started, "finished": now, "seconds": round(now - mark[0], 1),
                                     "runs_trained": 1, "jobs": jobs, "settings": settings.to_dict()}) + "\n")
        if results_dir is not None:
            save_for_reuse(settings, [records[job[1]]], work_dir, results_dir, base=False)
        mark[0] = now

    _run_many([(settings, run, world_dir, initial[run.seed], run_dirs[run], None) for run in todo], jobs, progress,
              "comparison runs", total=len(runs), on_done=done)
    return [records[run] for run in runs]


#: In the results folder (``benchmarks/results``, committed): what a later invocation, on this machine or another,
#: needs to continue a comparison without training again what is finished.
SAVED_RUNS = "runs"
SAVED_BASE = "finetune-base"
#: The files of the base that are kept: the model and processor (any ``*.safetensors`` too), its record and its logs.
BASE_EXPORTS = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", BASE_FILE, "metrics.jsonl", "loss_curve.png")


def _copy_folder(files: list[Path], destination: Path) -> None:
    """Make ``destination`` hold copies of ``files`` (replacing it, so that a reader sees all of them or the old
    folder), unless it already holds the same bytes."""
    import shutil

    if all((destination / f.name).is_file() and (destination / f.name).read_bytes() == f.read_bytes() for f in files):
        return
    with atomic.atomic_path(destination, folder=True) as tmp:
        for file in files:
            shutil.copy2(file, tmp / file.name)


def _merge_ledger(source: Path, target: Path) -> None:
    """Append to the ledger ``target`` the entries of ``source`` it does not hold yet."""
    if not source.is_file():
        return
    known = set(target.read_text().splitlines()) if target.is_file() else set()
    missing = [line for line in source.read_text().splitlines() if line.strip() and line not in known]
    if missing:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as handle:
            handle.write("".join(line + "\n" for line in missing))


def save_for_reuse(settings: ComparisonSettings, records: list[dict], work_dir: Path, results_dir: Path,
                   base: bool = True) -> None:
    """Keep in ``results_dir`` each finished run's record and per-pair similarities (``runs/<run>/``), the ledger of
    training time (``invocations.jsonl``) and, for the fine-tuning protocol with ``base``, the base and the
    learning-rate selection (``finetune-base/``). Committed with the results, they let `adopt_saved` continue the
    comparison on another machine without training any of them again."""
    work_dir, results_dir = Path(work_dir), Path(results_dir)
    _merge_ledger(work_dir / INVOCATIONS_FILE, results_dir / INVOCATIONS_FILE)
    for record in records:
        source = work_dir / "runs" / record["run_name"]
        if (source / RESULT_FILE).is_file():
            _copy_folder([source / name for name in (RESULT_FILE, SIMILARITY_FILE) if (source / name).is_file()],
                         results_dir / SAVED_RUNS / record["run_name"])
    if not base or settings.protocol != "finetune" or load_base_record(work_dir) is None:
        return
    files = sorted(p for p in (work_dir / "base").iterdir()
                   if p.is_file() and (p.name in BASE_EXPORTS or p.suffix == ".safetensors"))
    selection = work_dir / "selection" / SELECTION_FILE
    _copy_folder(files + ([selection] if selection.is_file() else []), results_dir / SAVED_BASE)


def adopt_saved(settings: ComparisonSettings, work_dir: Path, results_dir: Path | None) -> dict[str, int]:
    """Bring into ``work_dir`` what `save_for_reuse` kept in ``results_dir`` and ``work_dir`` lacks, when it was made
    with the same settings: the fine-tuning base and its selection, and the finished runs' records. Nothing made
    with other settings is taken, and nothing in ``work_dir`` is replaced that is already finished there. Returns
    how many of each were adopted."""
    adopted = {"base": 0, "selection": 0, "runs": 0}
    if results_dir is None or not Path(results_dir).is_dir():
        return adopted
    work_dir, results_dir = Path(work_dir), Path(results_dir)
    saved_base = results_dir / SAVED_BASE
    if settings.protocol == "finetune" and (saved_base / BASE_FILE).is_file():
        wanted = settings.base_settings()
        mine = load_base_record(work_dir)
        if (mine is None or mine.get("settings") != wanted) and json.loads(
                (saved_base / BASE_FILE).read_text()).get("settings") == wanted:
            _copy_folder(sorted(p for p in saved_base.iterdir() if p.is_file() and p.name != SELECTION_FILE),
                         work_dir / "base")
            adopted["base"] = 1
        selection = saved_base / SELECTION_FILE
        previous = load_selection_record(work_dir)
        if selection.is_file() and (previous is None or previous.get("settings") != settings.selection_settings()) \
                and json.loads(selection.read_text()).get("settings") == settings.selection_settings():
            atomic.write_bytes(work_dir / "selection" / SELECTION_FILE, selection.read_bytes())
            adopted["selection"] = 1
    for run in settings.runs():
        saved = results_dir / SAVED_RUNS / run.run_name
        if load_result(work_dir / "runs" / run.run_name, settings) is None and load_result(saved, settings):
            files = [saved / name for name in (RESULT_FILE, SIMILARITY_FILE) if (saved / name).is_file()]
            _copy_folder(files, work_dir / "runs" / run.run_name)
            adopted["runs"] += 1
    # The time spent on the runs adopted, as the machines that trained them recorded it.
    _merge_ledger(results_dir / INVOCATIONS_FILE, work_dir / INVOCATIONS_FILE)
    if any(adopted.values()):
        logger.info("Adopted from %s: %s", results_dir, ", ".join(f"{k} {v}" for k, v in adopted.items() if v))
    return adopted


def training_wall_time(work_dir: Path, settings: ComparisonSettings) -> dict[str, float | int]:
    """Wall time spent training this comparison's runs, summed over the invocations that trained any (an
    interrupted comparison that was resumed counts both parts, up to its last finished run), from
    ``invocations.jsonl`` in ``work_dir`` (one entry per finished run)."""
    path = Path(work_dir) / INVOCATIONS_FILE
    seconds, runs, invocations = 0.0, 0, set()
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines()):
            entry = json.loads(line)
            if entry.get("settings") == settings.to_dict():
                seconds += entry["seconds"]
                runs += entry["runs_trained"]
                invocations.add(entry.get("invocation", f"entry-{number}"))
    return {"seconds": seconds, "runs_trained": runs, "invocations": len(invocations)}
