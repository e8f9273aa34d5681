"""The whole synthesis job: captions (and images) in, TripletData out, on a datatrove executor, resumable.

Stages, per row: negative caption (LLM or rules) -> positive image (from the dataset, or rendered from the caption)
-> negative image (text-to-image) -> optional CLIP triplet score -> optional VQA quality score. Each stage is a step
of one datatrove pipeline (`dataset_builders.synthesis.pipeline`), one task per shard; the same pipeline runs on

* ``--executor local`` (`LocalPipelineExecutor`, the default): ``--workers`` tasks at once on this machine;
* ``--executor slurm`` (`SlurmPipelineExecutor`): a job array with one task per shard, no rendezvous between them,
  then a one-task job that writes the card and manifest once every shard is done;
* ``--executor ray`` (`RayPipelineExecutor`): the tasks on the Ray cluster `ray.init()` finds.

Scale and safety:

* **Atomic output.** A finished shard is one parquet file ``data/train-{i:05d}-of-{n:05d}.parquet`` (written to a
  temporary name, then renamed) followed by its record ``synthesis/shards/{i:05d}.json`` in the folder's ledger
  (`dataset_builders.utils.output_folders.OutputFolder`): which rows were written, which were rejected and why, which
  failed and with what error, and how long each stage took; then datatrove's completion file
  (``synthesis/pipeline/completions``). A rerun skips completed tasks, redoes the others, and for shards with failed
  rows redoes only those rows, merging them with the rows already written. After a crash or SIGKILL (of a task, of
  the executor, a preempted Slurm task) there are no duplicates and no holes.
* **One live run per folder.** The process that starts the run holds the folder (`OutputFolder.hold`); a worker
  whose executor is gone stops within a second (`dataset_builders.utils.processes.watch_parent`).
* **Failures are rows, not crashes.** An exception inside a stage is retried row by row; a row that still fails is
  recorded with its error and left out of the shard, the other rows carry on, and the next run retries it.
  Rejected negative captions (the LLM's answer failed validation after its retries, or no rule applied) are final:
  recorded with their reason, never written as triplets.

When every shard is done, the card (``README.md``: YAML configs and features, a sample grid) and
``synthesis/manifest.json`` (counts, rejection reasons, throughput per stage, the VQA summary) are written, so
``load_dataset(out)`` reads the result.
"""

from __future__ import annotations

import logging
from collections import Counter

from .. import schema
from ..hub_layout import write_dataset_card
from ..rows import MAX_CAPTION_CHARACTERS
from ..utils import atomic
from ..utils.devices import resolve_device
from ..utils.output_folders import OutputFolder
from ..utils.processes import watch_forks
from .filters import filter_tripletdata
from .pipeline import SynthesisStep, build_pipeline, remember_plan, watch_tasks
from .plan import (PIPELINE_DIR, STATE_DIR, Plan, SynthesisConfig, SynthesisError, SynthesisReport, check_models,
                   check_options, output_folder, plan_input, row_seed, shard_path)
from .quality import summarize_vqa_scores

logger = logging.getLogger(__name__)


def run_synthesis(config: SynthesisConfig) -> SynthesisReport:
    """Run (or resume) a synthesis job on the configured executor and return the folder's `SynthesisReport`.

    With ``--executor slurm`` the job array is submitted and the report says what is done so far (the card and
    manifest are written by the array's final task).

    Raises:
        SynthesisError: bad input or options, or an output folder from another configuration (before any model is
            loaded).
    """
    check_options(config)
    check_models(config, config.device or resolve_device(None))
    plan = plan_input(config)
    remember_plan(plan)
    folder = output_folder(plan)
    folder.hold()  # one live run per folder
    try:
        folder.check()
        folder.claim()
        reopen_failed_shards(plan, folder)
        executor = make_executor(config, plan)
        pending = len(executor.get_incomplete_ranks())
        logger.info("%d of %d shards to do (%d rows per shard) on the %s executor.", pending, plan.num_shards,
                    config.rows_per_shard, config.executor)
        if pending or config.executor != "slurm":
            watch_forks()  # the helpers the executor forks (its task-queue manager) end with this process
            if config.executor == "local" and config.workers > 1:
                watch_tasks(plan)  # a task whose process dies ends the run (a pool would wait for it forever)
            executor.run()
        if config.executor == "slurm" and pending:
            return summarize(plan, folder)
        report = summarize(plan, folder)
        finish(plan, report)
        return report
    finally:
        folder.release()


class FinishRun(SynthesisStep):
    """The last job of a Slurm run (one task, after the array): the card and manifest, once every shard is done."""

    name = "finish run"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        plan = plan_input(self.config)
        report = summarize(plan, output_folder(plan))
        finish(plan, report)
        yield from ()


def reopen_failed_shards(plan: Plan, folder: OutputFolder) -> list[int]:
    """Withdraw datatrove's completion of every shard whose record lists failed rows, so the run retries them."""
    reopened = []
    for index in range(plan.num_shards):
        record = folder.record_for(index)
        if record is not None and record["failed"]:
            (plan.out / PIPELINE_DIR / "completions" / f"{index:05d}").unlink(missing_ok=True)
            reopened.append(index)
    return reopened


def make_executor(config: SynthesisConfig, plan: Plan):
    """The datatrove executor of the run: one task per shard, logs and completions in ``synthesis/pipeline``."""
    pipeline = build_pipeline(config)
    logging_dir = str(plan.out / PIPELINE_DIR)
    if config.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        tasks = SlurmPipelineExecutor(
            pipeline, tasks=plan.num_shards, workers=config.workers or -1, time=config.time,
            partition=config.partition, cpus_per_task=config.cpus_per_task, gpus_per_task=config.gpus_per_task,
            mem_per_cpu_gb=config.mem_per_cpu_gb, job_name="tripletclip-synthesize", env_command=config.env_command,
            logging_dir=logging_dir)
        return SlurmPipelineExecutor(
            [FinishRun(config)], tasks=1, time="01:00:00", partition=config.partition, cpus_per_task=1,
            mem_per_cpu_gb=config.mem_per_cpu_gb, job_name="tripletclip-synthesize-finish",
            env_command=config.env_command, depends=tasks, logging_dir=f"{logging_dir}-finish")
    if config.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=plan.num_shards, workers=config.workers or -1,
                                   cpus_per_task=config.cpus_per_task, gpus_per_task=config.gpus_per_task,
                                   mem_per_cpu_gb=config.mem_per_cpu_gb, logging_dir=logging_dir)
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=plan.num_shards, workers=min(config.workers, plan.num_shards),
                                 logging_dir=logging_dir, start_method="forkserver")


def summarize(plan: Plan, folder: OutputFolder) -> SynthesisReport:
    written, failed, done, shortened = 0, 0, 0, 0
    rejected: Counter[str] = Counter()
    timings: dict[str, dict[str, float]] = {}
    for index in range(plan.num_shards):
        record = folder.record_for(index)
        if record is None:
            continue
        done += 1
        written += record["written"]
        failed += len(record["failed"])
        shortened += len(record.get("shortened", []))
        rejected.update(v["reason"] for v in record["rejected"].values())
        _add_timings(timings, record["stages"])
    return SynthesisReport(plan.out, plan.num_rows, written, dict(rejected), failed, done, plan.num_shards,
                           _format_throughput(timings), shortened=shortened)


def finish(plan: Plan, report: SynthesisReport) -> None:
    """Card, VQA summary, manifest and (when asked) the CLIP-filtered copy, once every shard exists."""
    config = plan.config
    if report.shards_done == report.shards:
        if config.vqa_model:
            import pyarrow.parquet as pq

            scores = []
            for index in range(plan.num_shards):
                scores += pq.read_table(shard_path(plan, index), columns=[schema.VQA_SCORE]).column(0).to_pylist()
            report.vqa = summarize_vqa_scores(scores)
        write_dataset_card(plan.out, features=plan.features, pretty_name="TripletData (synthesized)",
                           details=_card_details(config, report))
        if report.complete and (config.keep_top_k is not None or config.min_clip_score is not None):
            report.filtered = filter_tripletdata(plan.out, plan.out / "filtered", top_k=config.keep_top_k,
                                                 threshold=config.min_clip_score, progress=config.progress)
    manifest = {
        "complete": report.complete, "rows": report.rows, "written": report.written, "rejected": report.rejected,
        "failed": report.failed, "shortened_captions": report.shortened, "shards": report.shards,
        "shards_done": report.shards_done,
        "throughput_rows_per_second": report.throughput, "vqa": report.vqa,
        "filtered": str(report.filtered) if report.filtered else None,
    }
    atomic.write_json(plan.out / STATE_DIR / "manifest.json", manifest, sort_keys=True, default=str)
    if not report.complete:
        logger.warning(
            "%d rows failed and %d of %d shards are done; rerun the same command to retry the rest (records in %s).",
            report.failed, report.shards_done, report.shards, plan.out / STATE_DIR / "shards",
        )


def _card_details(config: SynthesisConfig, report: SynthesisReport) -> str:
    captions = f"the LLM `{config.llm}` with the TripletCLIP paper's prompt" if config.llm else \
        "the rule-based generator of SugarCrepe's seven kinds (`negative_kind` names the kind)"
    images = (f"`{config.t2i}` ({config.num_inference_steps} steps, guidance {config.guidance_scale}, "
              f"{config.image_size} px; one seed per row in `negative_image_seed`)") if config.t2i else "none"
    lines = [
        "Synthesized with `tripletclip synthesize`.",
        "",
        f"- Negative captions: {captions}.",
        f"- Negative images: {images}.",
        f"- Rows: {report.rows} in, {report.written} written; rejected: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(report.rejected.items())) or 'none'}; failed: {report.failed}; "
        f"captions cut to {MAX_CAPTION_CHARACTERS} characters: {report.shortened}.",
    ]
    if config.clip_model:
        lines.append(f"- `clip_score`: (s(x, y) + s(x', y')) / 2 under `{config.clip_model}`.")
    if report.vqa:
        mean = report.vqa["mean_yes"]
        lines.append(f"- `vqa_score`: share of \"yes\" to {config.num_questions} LLM-written questions answered by "
                     f"`{config.vqa_model}` on the negative image; mean {'n/a' if mean is None else f'{mean:.3f}'} "
                     f"over {report.vqa['scored']} scored rows ({report.vqa['unscored']} without a valid question).")
    return "\n".join(lines)


def _format_throughput(timings: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: (t["rows"] / t["seconds"] if t["seconds"] > 0 else float("inf")) for name, t in timings.items()}


def _add_timings(total: dict[str, dict[str, float]], timings: dict[str, dict[str, float]]) -> None:
    for name, t in timings.items():
        entry = total.setdefault(name, {"rows": 0, "seconds": 0.0})
        entry["rows"] += t["rows"]
        entry["seconds"] += t["seconds"]


__all__ = ["SynthesisConfig", "SynthesisError", "SynthesisReport", "STATE_DIR", "finish", "make_executor",
           "reopen_failed_shards", "row_seed", "run_synthesis", "summarize"]
