"""The synthesis job as a datatrove pipeline: one task per shard, one step per stage.

    ReadShard -> NegativeCaptions -> PositiveImages -> NegativeImages -> ClipScores -> VQAScores -> WriteShard

Task ``i`` reads the rows of shard ``i`` (`Plan.shard_rows`) as datatrove `Document` objects (``id`` = the row's
index in the input, ``text`` = its caption) and each stage adds its result to the documents' metadata. A stage works
on the whole shard in batches; an exception costs only its rows (the batch is retried row by row, and a row that
still fails is marked failed with its error). A rejected row (no negative caption, an unreadable image) is marked
with its reason. Marked rows pass through the later stages untouched, and `WriteShard` writes the others.

What a task commits, in order: the parquet shard ``data/train-{i:05d}-of-{n:05d}.parquet`` (atomically), then its
record ``synthesis/shards/{i:05d}.json`` (written, rejected, failed rows; stage timings), then datatrove's completion
file. A rerun skips completed tasks (datatrove) and redoes the rest; a shard whose record lists failed rows has its
completion withdrawn before the run (`reopen_failed_shards`), and its task then redoes only those rows, keeping the
rows already written. So after any interruption there are no duplicates and no holes.

Models load once per worker process, on the first task that needs them (`task_models`), on the task's device: the
one given, else GPU ``rank % count`` when the machine has GPUs (a Slurm or Ray task sees only its own), else CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from .. import schema
from ..hub_layout import write_parquet_shard
from ..rows import MAX_CAPTION_CHARACTERS, caption_skip_reason, decode_text, image_skip_reason, shorten_caption
from ..utils import atomic
from ..utils.images import DEFAULT_MAX_PIXELS, decode_image
from ..utils.devices import resolve_device
from ..utils.processes import leave, watch_parent
from .filters import CLIPScorer
from .llm import LanguageModel, NegativeCaptionWriter, language_model
from .plan import (NO_RULE_APPLIES, PIPELINE_DIR, STAGES, Plan, SynthesisConfig, output_folder, plan_input, row_seed,
                   shard_path)
from .quality import QualityChecker, VQAModel
from .rules import generate_negative
from .t2i import ImageGenerator

logger = logging.getLogger(__name__)

#: Where each running task leaves its process ID (``{rank:05d}.pid``).
RUNNING_DIR = f"{PIPELINE_DIR}/running"
#: Metadata keys the stages write.
REJECTED, FAILED, SECONDS = "rejected", "failed", "stage_seconds"


# --------------------------------------------------------------------------------------------------------------------
# Per-process state: the plan and the models, built once per worker
# --------------------------------------------------------------------------------------------------------------------

_cache: dict[str, Any] = {}


def _key(kind: str, config: SynthesisConfig, *extra: str) -> str:
    """A cache key for what ``config`` determines (its output-changing options, the folder)."""
    return ":".join([kind, json.dumps(config.identity(), sort_keys=True, default=str), config.output_dir, *extra])


def task_plan(config: SynthesisConfig) -> Plan:
    """The run's `Plan`, read once per process (the input is memory-mapped Arrow)."""
    key = _key("plan", config)
    if key not in _cache:
        _cache[key] = plan_input(config)
    return _cache[key]


def remember_plan(plan: Plan) -> None:
    """Give the tasks that run in this process the `Plan` it has already read (one worker: no second read)."""
    _cache[_key("plan", plan.config)] = plan


def task_device(config: SynthesisConfig, rank: int) -> str:
    if config.device:
        return config.device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{rank % torch.cuda.device_count()}"
    return resolve_device(None)


@dataclass
class TaskModels:
    writer: Any = None
    images: Any = None
    clip: Any = None
    quality: Any = None


def task_models(config: SynthesisConfig, device: str, rank: int = 0) -> TaskModels:
    """The models of the run on ``device``, loaded once per process."""
    key = _key("models", config, device)
    if key not in _cache:
        _cache[key] = _load_models(config, device, rank)
    return _cache[key]


def _load_models(config: SynthesisConfig, device: str, rank: int) -> TaskModels:
    models = TaskModels()
    lm = None
    if config.llm:
        lm = language_model(config, device, rank)
        models.writer = NegativeCaptionWriter(
            lm, prompt=config.prompt, max_new_tokens=config.max_new_tokens, do_sample=config.do_sample,
            temperature=config.temperature, top_p=config.top_p, max_retries=config.max_retries,
            batch_size=config.llm_batch_size, min_length_ratio=config.min_length_ratio,
            max_length_ratio=config.max_length_ratio,
        )
    if config.t2i:
        models.images = ImageGenerator.from_pretrained(
            config.t2i, dtype=config.dtype, device=device, num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale, height=config.image_size, width=config.image_size,
            batch_size=config.t2i_batch_size, compile=config.t2i_compile,
        )
    if config.clip_model:
        models.clip = CLIPScorer.from_pretrained(config.clip_model, dtype=config.dtype, device=device,
                                                 trust_remote_code=config.trust_remote_code,
                                                 batch_size=config.clip_batch_size)
    if config.vqa_model:
        question_lm = lm if (config.question_llm in (None, config.llm) and lm is not None) else \
            LanguageModel.from_pretrained(config.question_llm, dtype=config.dtype, device=device)
        models.quality = QualityChecker(question_lm, VQAModel.from_pretrained(
            config.vqa_model, dtype=config.dtype, device=device, batch_size=config.vqa_batch_size),
            num_questions=config.num_questions)
    return models


# --------------------------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------------------------


def _pending(docs: Sequence[Document]) -> list[Document]:
    return [d for d in docs if REJECTED not in d.metadata and FAILED not in d.metadata]


class SynthesisStep(PipelineStep):
    """A step of the synthesis pipeline: holds the run's options (the models stay in the worker, `task_models`)."""

    type = "🔺 TripletCLIP"

    def __init__(self, config: SynthesisConfig):
        super().__init__()
        self.config = config


class ReadShard(SynthesisStep):
    """Task ``rank`` = shard ``rank``: its rows as documents (on a rerun, only those still to do)."""

    name = "read shard"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        watch_parent()  # a worker whose executor is gone stops instead of writing on unseen
        plan = task_plan(self.config)
        atomic.write_text(plan.out / RUNNING_DIR / f"{rank:05d}.pid", str(os.getpid()))  # for `watch_tasks`
        record = output_folder(plan).record_for(rank)
        rows = list(plan.shard_rows(rank)) if record is None else sorted(int(r) for r in record["failed"])
        values = plan.dataset.select(rows)[self.config.image_column] if self.config.image_column and rows else None
        for position, row in enumerate(rows):
            text, problem = decode_text(plan.captions[row])  # the one caption decoder
            metadata: dict[str, Any] = {"row": row, SECONDS: {}}
            if problem:
                metadata[REJECTED] = {"reason": caption_skip_reason(problem)}
                text = ""
            else:  # an overlong caption is cut at a word boundary (and counted), as a text model would truncate it
                text, metadata["shortened"] = shorten_caption(text.strip(), MAX_CAPTION_CHARACTERS)
            if values is not None:
                metadata["image"] = values[position]
            self.stat_update("rows")
            yield Document(text=text, id=str(row), metadata=metadata)


class _Stage(SynthesisStep):
    """One stage over a shard's pending rows, in one call of `compute`, failures isolated row by row and timed."""

    stage: str = ""
    key: str = ""

    def enabled(self) -> bool:
        return True

    def compute(self, docs: list[Document], models: TaskModels, rank: int) -> Sequence[Any]:
        raise NotImplementedError

    def accept(self, doc: Document, value: Any) -> None:
        doc.metadata[self.key] = value

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        docs = list(data or [])
        todo = _pending(docs) if self.enabled() else []
        if todo:
            models = task_models(self.config, task_device(self.config, rank), rank)
            start = time.perf_counter()
            with self.track_time(unit="shard"):
                try:
                    values = list(zip(todo, self.compute(todo, models, rank), strict=True))
                except Exception as error:  # one bad row must not cost the others: retry them one by one
                    logger.warning("%s failed for a batch of %d rows (%s); retrying row by row.", self.stage,
                                   len(todo), error)
                    values = []
                    for doc in todo:
                        try:
                            values.append((doc, self.compute([doc], models, rank)[0]))
                        except Exception as row_error:
                            doc.metadata[FAILED] = {"stage": self.stage,
                                                    "error": f"{type(row_error).__name__}: {row_error}"}
                            self.stat_update("failed")
            share = (time.perf_counter() - start) / len(todo)
            for doc in todo:
                doc.metadata[SECONDS][self.stage] = share
            for doc, value in values:
                self.accept(doc, value)
                if REJECTED in doc.metadata:
                    self.stat_update("rejected")
            self.stat_update("rows", value=len(todo))
        yield from docs


class NegativeCaptions(_Stage):
    name = stage = STAGES[0]
    key = "negative_caption"

    def compute(self, docs, models, rank):
        config = self.config
        if config.rules:
            return [generate_negative(d.text, seed=row_seed(config.seed, d.metadata["row"], "rules")) for d in docs]
        first_row = task_plan(config).shard_rows(rank).start
        return models.writer.generate([d.text for d in docs], seed=row_seed(config.seed, first_row, "llm"))

    def accept(self, doc, value):
        if self.config.rules:
            if value is None:
                doc.metadata[REJECTED] = {"reason": NO_RULE_APPLIES}
            else:
                doc.metadata[self.key], doc.metadata["negative_kind"] = value.text, value.kind
        elif value.accepted:
            doc.metadata[self.key], doc.metadata["negative_kind"] = value.negative_caption, "llm"
        else:
            doc.metadata[REJECTED] = {"reason": value.reason, "outputs": value.outputs}


def _stored_image(value: dict[str, Any]) -> dict[str, Any]:
    """An input image as bytes to embed (a local path is read, so the dataset does not point outside itself)."""
    if value.get("bytes") is None and value.get("path"):
        return {"bytes": Path(value["path"]).read_bytes(), "path": Path(value["path"]).name}
    return value


class PositiveImages(_Stage):
    """The input's images, checked by the image decoder (stored as they are); or rendered from the captions."""

    name = stage = STAGES[1]
    key = "image"

    def run(self, data=None, rank=0, world_size=1):
        if not self.config.image_column:
            yield from super().run(data, rank, world_size)
            return
        for doc in data or []:
            if REJECTED not in doc.metadata and FAILED not in doc.metadata:
                _, problem = decode_image(doc.metadata["image"], max_pixels=DEFAULT_MAX_PIXELS)
                if problem:
                    doc.metadata[REJECTED] = {"reason": image_skip_reason(problem)}
                    self.stat_update("rejected")
                else:
                    doc.metadata["image"] = _stored_image(doc.metadata["image"])
            yield doc

    def compute(self, docs, models, rank):
        return models.images.generate([d.text for d in docs],
                                      [row_seed(self.config.seed, d.metadata["row"], "image") for d in docs])


class NegativeImages(_Stage):
    name = stage = STAGES[2]
    key = "negative_image"

    def enabled(self):
        return bool(self.config.t2i)

    def compute(self, docs, models, rank):
        return models.images.generate([d.metadata["negative_caption"] for d in docs],
                                      [row_seed(self.config.seed, d.metadata["row"], "negative_image") for d in docs])


class ClipScores(_Stage):
    name = stage = STAGES[3]
    key = schema.CLIP_SCORE

    def enabled(self):
        return bool(self.config.clip_model)

    def compute(self, docs, models, rank):
        return models.clip.triplet_scores(
            [d.metadata["image"] for d in docs], [d.text for d in docs],
            [d.metadata["negative_image"] for d in docs], [d.metadata["negative_caption"] for d in docs]).tolist()


class VQAScores(_Stage):
    name = stage = STAGES[4]
    key = schema.VQA_SCORE

    def enabled(self):
        return bool(self.config.vqa_model)

    def compute(self, docs, models, rank):
        first_row = task_plan(self.config).shard_rows(rank).start
        return models.quality.check([d.metadata["negative_image"] for d in docs],
                                    [d.metadata["negative_caption"] for d in docs],
                                    seed=row_seed(self.config.seed, first_row, "questions"))

    def accept(self, doc, value):
        doc.metadata[self.key] = value.vqa_score


class WriteShard(SynthesisStep):
    """The shard's parquet file (merged with the rows a previous attempt wrote), then its record."""

    name = "write shard"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import pyarrow.parquet as pq

        config, plan = self.config, task_plan(self.config)
        folder = output_folder(plan)
        docs = list(data or [])
        record = folder.record_for(rank)
        redone = {d.metadata["row"] for d in docs}
        path = shard_path(plan, rank)
        kept = [] if record is None or not path.exists() else \
            [r for r in pq.read_table(path).to_pylist() if int(r[schema.ID]) not in redone]
        written = [self.row(d) for d in _pending(docs)]
        merged = sorted(kept + written, key=lambda r: int(r[schema.ID]))
        with self.track_time(unit="shard"):
            write_parquet_shard(merged, path, plan.features)
        rejected = dict((record or {}).get("rejected", {}))
        rejected.update({d.id: d.metadata[REJECTED] for d in docs if REJECTED in d.metadata})
        failed = {d.id: d.metadata[FAILED] for d in docs if FAILED in d.metadata}
        shortened = [r for r in (record or {}).get("shortened", []) if r not in redone] + \
            [d.metadata["row"] for d in _pending(docs) if d.metadata.get("shortened")]
        timings: dict[str, dict[str, float]] = {}
        for doc in docs:
            for stage, seconds in doc.metadata[SECONDS].items():
                entry = timings.setdefault(stage, {"rows": 0, "seconds": 0.0})
                entry["rows"] += 1
                entry["seconds"] += seconds
        rows = plan.shard_rows(rank)
        folder.record(rank, {  # after the parquet: a record means the shard is there
            "shard": rank, "rows": [rows.start, rows.stop], "written": len(merged), "rejected": rejected,
            "failed": failed, "stages": timings, "shortened": sorted(shortened),
            "attempts": (record or {}).get("attempts", 0) + 1, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        self.stat_update("written", value=len(written))
        self.stat_update("failed", value=len(failed))
        if config.progress:
            rates = ", ".join(f"{stage} {t['rows'] / t['seconds']:.2f} rows/s" for stage, t in timings.items()
                              if t["seconds"] > 0)
            logger.info("shard %d of %d: %d rows written, %d rejected, %d failed%s", rank + 1, plan.num_shards,
                        len(written), sum(REJECTED in d.metadata for d in docs), len(failed),
                        f" ({rates})" if rates else "")
        yield from ()

    def row(self, doc: Document) -> dict[str, Any]:
        config, meta, row = self.config, doc.metadata, doc.metadata["row"]
        record = {
            schema.IMAGE: meta["image"],
            schema.CAPTION: doc.text,
            schema.NEGATIVE_IMAGE: meta.get("negative_image"),
            schema.NEGATIVE_CAPTION: meta["negative_caption"],
            schema.ID: doc.id,
            schema.NEGATIVE_KIND: meta["negative_kind"],
        }
        if config.clip_model:
            record[schema.CLIP_SCORE] = meta[schema.CLIP_SCORE]
        if config.vqa_model:
            record[schema.VQA_SCORE] = meta[schema.VQA_SCORE]
        if config.t2i:
            record["negative_image_seed"] = row_seed(config.seed, row, "negative_image")
        if config.t2i and not config.image_column:
            record["image_seed"] = row_seed(config.seed, row, "image")
        return record


def watch_tasks(plan: Plan, poll: float = 0.5, grace: float = 2.0) -> None:
    """In the process that runs a local executor with several workers: a thread that ends the run, with one
    ``error:`` line, when a worker process dies while shards remain (SIGKILL, the out-of-memory killer), whether it
    was running a task or taking the next one. A process pool cannot notice that: it would wait for the lost task
    forever. The line names the task the worker was running (when its record was still missing) and its PID; a run
    that stops by itself after an error in a task (its pool ends the workers) is left ``grace`` seconds to say so
    first. The shards already finished stay; the rerun of the same command redoes the rest."""
    running, completions = plan.out / RUNNING_DIR, plan.out / PIPELINE_DIR / "completions"
    shutil.rmtree(running, ignore_errors=True)  # an earlier run's tasks (this run holds the folder)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # a zombie (dead, not yet reaped) is dead too
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
        except OSError:
            return True

    def unfinished() -> list[int]:
        return [i for i in range(plan.num_shards) if not (completions / f"{i:05d}").exists()]

    def watch() -> None:
        latest: dict[int, int] = {}  # worker PID -> the task it took last
        while True:
            time.sleep(poll)
            for file in sorted(running.glob("*.pid")) if running.is_dir() else []:
                try:
                    pid = int(file.read_text())
                except (OSError, ValueError):
                    continue
                latest[pid] = max(int(file.stem), latest.get(pid, -1))
            dead = [pid for pid in latest if not alive(pid)]
            if not dead:
                continue
            time.sleep(grace)  # a completion on its way, or a run ending on its own after an error
            left = unfinished()
            if not left:
                for pid in dead:
                    latest.pop(pid, None)
                continue
            for pid in latest:  # stop the other workers: their shards are redone on the rerun
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            pid = dead[0]
            task = latest[pid]
            which = (f"the worker running task {task} (shard {task + 1} of {plan.num_shards}, PID {pid})"
                     if task in left else f"a worker (PID {pid}, about to take its next task)")
            leave(f"{which} died (killed, or out of memory) with {len(left)} of {plan.num_shards} shards not "
                  f"written, so the run stops here. Every finished shard is intact; run the same command again to "
                  f"redo the rest.")

    threading.Thread(target=watch, daemon=True, name="tripletclip-task-watch").start()


def build_pipeline(config: SynthesisConfig) -> list[PipelineStep]:
    """The steps of the synthesis pipeline for ``config`` (stages a run does not use pass their rows through)."""
    return [ReadShard(config), NegativeCaptions(config), PositiveImages(config), NegativeImages(config),
            ClipScores(config), VQAScores(config), WriteShard(config)]


__all__ = ["ClipScores", "NegativeCaptions", "NegativeImages", "PositiveImages", "ReadShard", "SynthesisStep",
           "TaskModels", "VQAScores", "WriteShard", "build_pipeline", "remember_plan", "task_device", "task_models",
           "task_plan", "watch_tasks"]
