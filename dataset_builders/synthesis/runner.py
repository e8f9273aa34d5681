"""The whole synthesis job: captions (and images) in, TripletData out, across many processes, resumable.

Stages, per row: negative caption (LLM or rules) -> positive image (from the dataset, or rendered from the caption)
-> negative image (text-to-image) -> optional CLIP triplet score -> optional VQA quality score.

Scale and safety:

* **Deterministic parts.** Rows are cut into shards of ``rows_per_shard`` consecutive rows; shard ``i`` belongs to
  process ``i % num_processes`` (accelerate's `PartialState`), so the processes never share a row, whatever their
  number. A row's seeds depend only on the run's seed and the row index (images) or the shard (LLM batches), so a
  shard comes out the same on any process, in any run.
* **Atomic output.** A finished shard is one parquet file ``data/train-{i:05d}-of-{n:05d}.parquet`` (written to a
  temporary name, then renamed) followed by its record ``synthesis/shards/{i:05d}.json`` in the folder's ledger
  (`dataset_builders.utils.output_folders.OutputFolder`). The record is the manifest entry: which rows were written, which were rejected and why, which failed and with what error, and how
  long each stage took. A rerun skips shards with a record and no failures, redoes shards without a record (a
  parquet file without a record is replaced), and for shards with failures redoes only the failed rows, merging them
  with the rows already written. After a crash or SIGKILL there are no duplicates and no holes.
* **One configuration per folder.** ``synthesis/config.json`` holds every option that changes the output and a
  fingerprint of the input; a rerun with other options, or on other input, is refused with the differences listed.
* **Bad input fails early**: missing columns, empty captions, a model folder of the wrong kind, a GPU-only dtype on
  CPU, a folder from another configuration: all raise `SynthesisError` before any model is loaded.
* **Failures are rows, not crashes.** An exception inside a stage is retried row by row; a row that still fails is
  recorded with its error and left out of the shard, the other rows carry on, and the next run retries it.
  Rejected negative captions (the LLM's answer failed validation after its retries, or no rule applied) are final:
  recorded with their reason, never written as triplets.

When every shard is done, the main process writes the dataset card (``README.md``: YAML configs and features, a
sample grid) and ``synthesis/manifest.json`` (counts, rejection reasons, throughput per stage, the VQA summary), so
``load_dataset(out)`` reads the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from .. import schema
from ..hub_layout import shard_filename, write_dataset_card, write_parquet_shard
from ..rows import MAX_CAPTION_CHARACTERS, caption_skip_reason, decode_text, image_skip_reason, shorten_caption
from ..utils.images import DEFAULT_MAX_PIXELS, decode_image
from ..utils import atomic
from ..utils.devices import resolve_dtype
from ..utils.errors import InputError
from ..utils.output_folders import OutputFolder
from ..utils.processes import watch_run
from .llm import DEFAULT_LLM, check_causal_lm
from .prompts import NEGATIVE_CAPTION_PROMPT, negative_caption_prompt
from .t2i import DEFAULT_T2I, check_text_to_image

logger = logging.getLogger(__name__)

SPLIT = "train"
STATE_DIR = "synthesis"
NO_RULE_APPLIES = "no_rule_applies"
STAGES = ("negative captions", "images", "negative images", "clip scores", "vqa scores")
#: Options that do not change what is written; they may differ between a run and its resumption.
RUNTIME_FIELDS = ("output_dir", "keep_top_k", "min_clip_score", "device", "progress", "t2i_batch_size",
                  "clip_batch_size", "vqa_batch_size")
JOB = "tripletclip synthesize"


class SynthesisError(InputError):
    """Bad input for a synthesis run, found before generation starts; the message says what to change."""


def _option(default, help_text: str, **metadata) -> Any:
    return field(default=default, metadata={"help": help_text, **metadata})


@dataclass
class SynthesisConfig:
    """Everything a synthesis run needs; also the options of ``tripletclip synthesize`` (one flag per field).

    Options not in `RUNTIME_FIELDS` are recorded in the output folder and must match on resume.
    """

    # ---- input and output
    dataset: str = field(metadata={"help": "the captions (and images): a dataset folder, a JSON-lines/JSON/CSV/TSV/"
                                           "parquet file, or a Hub dataset id"})
    caption_column: str = field(metadata={"help": "the column with the captions"})
    output_dir: str = field(metadata={"help": "output folder (TripletData in the Hub layout)"})
    image_column: str | None = _option(None, "the column with the images (leave out to render positive images from "
                                             "the captions with --t2i)")
    split: str = _option("train", "the input split to read")
    max_rows: int | None = _option(None, "use only the first N rows")
    rows_per_shard: int = _option(1000, "rows per parquet shard (the unit of resume)")
    seed: int = _option(0, "seed of the run (every row's seeds derive from it)")
    # ---- negative captions
    llm: str | None = _option(None, f"causal LM, Hub id or folder (the paper: {DEFAULT_LLM})")
    rules: bool = _option(False, "write negative captions with the rule-based generator of SugarCrepe's seven kinds")
    prompt_file: str | None = _option(None, "a text file with your own prompt template ('{}' marks the caption); "
                                            "default: the paper's prompt")
    llm_batch_size: int = _option(16, "prompts per generation batch")
    max_new_tokens: int = _option(96, "generation budget per answer")
    do_sample: bool = _option(False, "sample the first attempt (default: greedy)")
    temperature: float = _option(0.7, "sampling temperature")
    top_p: float = _option(0.9, "nucleus sampling")
    max_retries: int = _option(2, "extra (sampled) attempts for an answer that fails validation before it is rejected")
    min_length_ratio: float = _option(0.5, "reject answers with fewer words than this times the caption's")
    max_length_ratio: float = _option(2.0, "reject answers with more words than this times the caption's (plus two)")
    # ---- images
    t2i: str | None = _option(None, f"diffusers text-to-image checkpoint (the paper: {DEFAULT_T2I})")
    num_inference_steps: int = _option(1, "denoising steps (SDXL-turbo: 1 to 4)")
    guidance_scale: float = _option(0.0, "classifier-free guidance (SDXL-turbo: 0.0)")
    image_size: int = _option(512, "height and width in pixels (SDXL-turbo: 512)")
    t2i_batch_size: int = _option(8, "prompts per pipeline call")
    # ---- filtering and quality check
    clip_model: str | None = _option(None, "CLIP-like model for the triplet score (clip_score)")
    clip_batch_size: int = _option(32, "pairs per CLIP forward pass")
    keep_top_k: int | None = _option(None, "write the K best triplets to OUTPUT_DIR/filtered")
    min_clip_score: float | None = _option(None, "write triplets scoring at least this to OUTPUT_DIR/filtered")
    vqa_model: str | None = _option(None, "visual-question-answering model for the quality check (vqa_score), e.g. "
                                          "dandelin/vilt-b32-finetuned-vqa")
    question_llm: str | None = _option(None, "LLM that writes the yes/no questions (default: --llm)")
    num_questions: int = _option(5, "yes/no questions per negative caption")
    vqa_batch_size: int = _option(32, "questions per VQA forward pass")
    trust_remote_code: bool = _option(False, "for a CLIP model with its own code")
    # ---- runtime
    dtype: str | None = _option(None, "model dtype: float32, bfloat16, float16 (GPU only); default: each "
                                      "checkpoint's own")
    device: str | None = _option(None, "default: this process's accelerator, else CPU")
    progress: bool = _option(True, "show progress bars")

    @property
    def prompt(self) -> str:
        """The negative-caption prompt: the file's text, or the paper's prompt."""
        if self.prompt_file is None:
            return NEGATIVE_CAPTION_PROMPT
        try:
            return Path(self.prompt_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SynthesisError(f"Cannot read --prompt_file {self.prompt_file}: {error}") from error

    def identity(self) -> dict[str, Any]:
        """The options that determine the output (all but `RUNTIME_FIELDS`), with local paths made absolute and the
        prompt file replaced by its text."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_FIELDS}
        for key in ("dataset", "llm", "t2i", "clip_model", "vqa_model", "question_llm"):
            if values[key] is not None and Path(values[key]).expanduser().exists():
                values[key] = str(Path(values[key]).expanduser().resolve())
        del values["prompt_file"]
        values["prompt"] = self.prompt
        return values


@dataclass
class SynthesisReport:
    """What a run (or the folder, once complete) holds. ``complete`` is False while rows failed or shards remain."""

    out: Path
    rows: int
    written: int
    rejected: dict[str, int]
    failed: int
    shards_done: int
    shards: int
    throughput: dict[str, float]
    vqa: dict[str, Any] | None = None
    filtered: Path | None = None
    shortened: int = 0  # written rows whose caption was cut to MAX_CAPTION_CHARACTERS

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.shards_done == self.shards


# --------------------------------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------------------------------


def row_seed(seed: int, row: int, stream: str) -> int:
    """A 63-bit seed for ``row`` in the named stream (``"negative_image"``, ``"image"``, ``"rules"``, ...), stable
    across processes, platforms and Python versions."""
    digest = hashlib.blake2b(f"{seed}:{stream}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# --------------------------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------------------------

def load_input(value: str, split: str = "train") -> datasets.Dataset:
    """Load the input captions (and images): any dataset value `dataset_builders.sources` resolves (a file, a folder,
    a Hub id)."""
    from ..sources import load_dataset

    try:
        return load_dataset(value, split=split)
    except (InputError, FileNotFoundError, ValueError, OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise SynthesisError(
            f"Could not load the input {value!r} (split {split!r}) with datasets.load_dataset: {error}"
        ) from error


def _captions_fingerprint(captions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for caption in captions:
        if isinstance(caption, str):
            digest.update(caption.encode("utf-8", "surrogatepass"))
        elif isinstance(caption, (bytes, bytearray)):
            digest.update(b"\1" + bytes(caption))
        else:
            digest.update(b"\2")  # no caption
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class _Plan:
    config: SynthesisConfig
    dataset: datasets.Dataset
    captions: Sequence[str]  # the caption column (read lazily from Arrow)
    num_rows: int
    num_shards: int
    features: datasets.Features
    fingerprint: str
    out: Path

    def shard_rows(self, index: int) -> range:
        start = index * self.config.rows_per_shard
        return range(start, min(self.num_rows, start + self.config.rows_per_shard))


def _features(config: SynthesisConfig) -> datasets.Features:
    known = schema.metadata_features()
    extra: dict[str, Any] = {schema.ID: known[schema.ID], schema.NEGATIVE_KIND: known[schema.NEGATIVE_KIND]}
    if config.clip_model:
        extra[schema.CLIP_SCORE] = known[schema.CLIP_SCORE]
    if config.vqa_model:
        extra[schema.VQA_SCORE] = known[schema.VQA_SCORE]
    if config.t2i:
        extra["negative_image_seed"] = datasets.Value("int64")
    if config.t2i and not config.image_column:
        extra["image_seed"] = datasets.Value("int64")
    return schema.triplet_features(extra)


def _check_options(config: SynthesisConfig) -> None:
    if bool(config.llm) == bool(config.rules):
        raise SynthesisError(
            "Choose one way to write negative captions: --llm MODEL (e.g. mistralai/Mistral-7B-Instruct-v0.2) or "
            "--rules (the rule-based generator)."
        )
    if not config.image_column and not config.t2i:
        raise SynthesisError(
            "TripletData needs images: give --image_column COL for the dataset's images, or --t2i MODEL (e.g. "
            "stabilityai/sdxl-turbo) to render them from the captions."
        )
    if config.rows_per_shard < 1:
        raise SynthesisError(f"--rows_per_shard must be at least 1, got {config.rows_per_shard}.")
    if config.max_rows is not None and config.max_rows < 1:
        raise SynthesisError(f"--max_rows must be at least 1, got {config.max_rows}.")
    if config.clip_model and not config.t2i:
        raise SynthesisError("--clip_model scores triplets with their negative images: it needs --t2i MODEL.")
    if (config.keep_top_k is not None or config.min_clip_score is not None) and not config.clip_model:
        raise SynthesisError("--keep_top_k / --min_clip_score filter on CLIP scores: add --clip_model MODEL.")
    if config.vqa_model and not config.t2i:
        raise SynthesisError("--vqa_model checks negative images: it needs --t2i MODEL.")
    if config.vqa_model and not (config.question_llm or config.llm):
        raise SynthesisError(
            "--vqa_model needs an LLM to write the yes/no questions: add --question_llm MODEL (with --rules there "
            "is no --llm to reuse)."
        )
    if config.llm:
        negative_caption_prompt("", config.prompt)


def _check_models(config: SynthesisConfig, device: str) -> None:
    try:
        resolve_dtype(config.dtype, device)
        if config.llm:
            check_causal_lm(config.llm)
        if config.question_llm:
            check_causal_lm(config.question_llm)
        if config.t2i:
            check_text_to_image(config.t2i)
    except ValueError as error:
        raise SynthesisError(str(error)) from error


def _prepare(config: SynthesisConfig, device: str) -> _Plan:
    _check_options(config)
    _check_models(config, device)
    dataset = load_input(config.dataset, config.split)
    columns = dataset.column_names
    if config.caption_column not in columns:
        raise SynthesisError(
            f"The input has no caption column {config.caption_column!r}; its columns are {columns}. "
            f"Pass --caption_column with one of them."
        )
    if config.image_column and config.image_column not in columns:
        raise SynthesisError(
            f"The input has no image column {config.image_column!r}; its columns are {columns}. Pass --image_column "
            f"with one of them, or leave it out and give --t2i MODEL to render images from the captions."
        )
    if config.max_rows is not None:
        dataset = dataset.select(range(min(config.max_rows, len(dataset))))
    keep = [config.caption_column] + ([config.image_column] if config.image_column else [])
    dataset = dataset.select_columns(keep)
    if config.image_column:  # images pass through as stored (bytes), decoded only where a model needs them
        found = dataset.features[config.image_column]
        try:
            dataset = dataset.cast_column(config.image_column, datasets.Image(decode=False))
        except (ValueError, TypeError) as error:
            raise SynthesisError(
                f"Column {config.image_column!r} does not hold images (it is {found}); give the column with images "
                f"or image paths."
            ) from error
    captions = dataset[config.caption_column]  # empty or undecodable ones are skipped and counted, row by row
    if not captions:
        raise SynthesisError(f"The input {config.dataset!r} has no rows.")
    num_shards = math.ceil(len(captions) / config.rows_per_shard)
    return _Plan(config, dataset, captions, len(captions), num_shards, _features(config),
                 _captions_fingerprint(captions), Path(config.output_dir).expanduser())


# --------------------------------------------------------------------------------------------------------------------
# Output folder state
# --------------------------------------------------------------------------------------------------------------------


def _shard_path(plan: _Plan, index: int) -> Path:
    return plan.out / "data" / shard_filename(SPLIT, index, plan.num_shards)


def _folder(plan: _Plan) -> OutputFolder:
    """The run's claim on its output folder: its configuration, input and layout, and a ledger of finished shards."""
    identity = {"config": plan.config.identity(),
                "input": {"num_rows": plan.num_rows, "captions_sha256": plan.fingerprint},
                "layout": {"split": SPLIT, "num_shards": plan.num_shards}}
    return OutputFolder(
        plan.out, identity, JOB, identity_file=f"{STATE_DIR}/config.json", ledger_dir=f"{STATE_DIR}/shards",
        other_message="The output folder {path} was made by a different synthesis configuration ({differences}). "
                      "Rerun with the same options and input to resume it, or choose a new --output_dir.",
        foreign_message="The output folder {path} is not empty and was not made by `tripletclip synthesize` (no "
                        f"{STATE_DIR}/config.json). Choose a new or empty --output_dir.",
    )


# --------------------------------------------------------------------------------------------------------------------
# Models, loaded once per process and only when it has work
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Models:
    writer: Any = None
    images: Any = None
    clip: Any = None
    quality: Any = None


def _load_models(config: SynthesisConfig, device: str) -> _Models:
    from .llm import LanguageModel, NegativeCaptionWriter

    models = _Models()
    lm = None
    if config.llm:
        lm = LanguageModel.from_pretrained(config.llm, dtype=config.dtype, device=device)
        models.writer = NegativeCaptionWriter(
            lm, prompt=config.prompt, max_new_tokens=config.max_new_tokens, do_sample=config.do_sample,
            temperature=config.temperature, top_p=config.top_p, max_retries=config.max_retries,
            batch_size=config.llm_batch_size, min_length_ratio=config.min_length_ratio,
            max_length_ratio=config.max_length_ratio,
        )
    if config.t2i:
        from .t2i import ImageGenerator

        models.images = ImageGenerator.from_pretrained(
            config.t2i, dtype=config.dtype, device=device, num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale, height=config.image_size, width=config.image_size,
            batch_size=config.t2i_batch_size,
        )
    if config.clip_model:
        from .filters import CLIPScorer

        models.clip = CLIPScorer.from_pretrained(config.clip_model, dtype=config.dtype, device=device,
                                                 trust_remote_code=config.trust_remote_code,
                                                 batch_size=config.clip_batch_size)
    if config.vqa_model:
        from .llm import LanguageModel
        from .quality import QualityChecker, VQAModel

        question_lm = lm if (config.question_llm in (None, config.llm) and lm is not None) else \
            LanguageModel.from_pretrained(config.question_llm, dtype=config.dtype, device=device)
        models.quality = QualityChecker(question_lm, VQAModel.from_pretrained(
            config.vqa_model, dtype=config.dtype, device=device, batch_size=config.vqa_batch_size),
            num_questions=config.num_questions)
    return models


# --------------------------------------------------------------------------------------------------------------------
# One shard
# --------------------------------------------------------------------------------------------------------------------


def _stored_image(value: dict[str, Any]) -> dict[str, Any]:
    """An input image as bytes to embed (a local path is read, so the dataset does not point outside itself)."""
    if value.get("bytes") is None and value.get("path"):
        return {"bytes": Path(value["path"]).read_bytes(), "path": Path(value["path"]).name}
    return value


class _Stage:
    """Runs one stage over rows, isolating failures row by row and timing it."""

    def __init__(self, name: str, failed: dict[int, dict[str, str]], timings: dict[str, dict[str, float]],
                 bars: dict[str, Any]):
        self.name, self.failed, self.timings, self.bars = name, failed, timings, bars

    def __call__(self, rows: list[int], compute: Callable[[list[int]], Sequence[Any]]) -> dict[int, Any]:
        if not rows:
            return {}
        start = time.perf_counter()
        try:
            values = dict(zip(rows, compute(rows), strict=True))
        except Exception as error:  # one bad row must not cost the others: retry them one by one
            logger.warning("%s failed for a batch of %d rows (%s); retrying row by row.", self.name, len(rows), error)
            values = {}
            for row in rows:
                try:
                    values[row] = compute([row])[0]
                except Exception as row_error:
                    self.failed[row] = {"stage": self.name, "error": f"{type(row_error).__name__}: {row_error}"}
        timing = self.timings.setdefault(self.name, {"rows": 0, "seconds": 0.0})
        timing["rows"] += len(rows)
        timing["seconds"] += time.perf_counter() - start
        if self.name in self.bars:
            self.bars[self.name].update(len(rows))
        return values


def _process_shard(plan: _Plan, index: int, rows: list[int], models: _Models, bars: dict[str, Any]
                   ) -> tuple[list[dict[str, Any]], dict[int, Any], dict[int, Any], dict[str, Any], list[int]]:
    """Generate ``rows`` of shard ``index``: (written rows, rejected, failed, stage timings, rows whose caption was
    cut to `MAX_CAPTION_CHARACTERS`)."""
    from .rules import generate_negative

    config = plan.config
    failed: dict[int, dict[str, str]] = {}
    rejected: dict[int, dict[str, Any]] = {}
    timings: dict[str, dict[str, float]] = {}
    stage = lambda name: _Stage(name, failed, timings, bars)  # noqa: E731
    captions, shortened = {}, []
    for row in rows:  # the one caption decoder: empty or undecodable captions are skipped and counted
        text, problem = decode_text(plan.captions[row])
        if problem:
            rejected[row] = {"reason": caption_skip_reason(problem)}
        else:  # an overlong caption is cut at a word boundary (and counted), as a text model would truncate it
            captions[row], cut = shorten_caption(text.strip(), MAX_CAPTION_CHARACTERS)
            if cut:
                shortened.append(row)
    rows = [row for row in rows if row in captions]
    first_row = plan.shard_rows(index).start

    # 1. negative captions
    if config.rules:
        def rule_negatives(batch):
            return [generate_negative(captions[r], seed=row_seed(config.seed, r, "rules")) for r in batch]

        outcomes = stage(STAGES[0])(rows, rule_negatives)
        negatives = {}
        for row, outcome in outcomes.items():
            if outcome is None:
                rejected[row] = {"reason": NO_RULE_APPLIES}
            else:
                negatives[row] = (outcome.text, outcome.kind)
    else:
        def llm_negatives(batch):
            return models.writer.generate([captions[r] for r in batch], seed=row_seed(config.seed, first_row, "llm"))

        outcomes = stage(STAGES[0])(rows, llm_negatives)
        negatives = {}
        for row, result in outcomes.items():
            if result.accepted:
                negatives[row] = (result.negative_caption, "llm")
            else:
                rejected[row] = {"reason": result.reason, "outputs": result.outputs}
    todo = [r for r in rows if r in negatives]

    # 2. positive images
    if config.image_column:
        column = plan.dataset.select(todo)[config.image_column] if todo else []
        images = {}
        for row, value in zip(todo, column):  # stored as they are, once the image decoder has accepted them
            _, problem = decode_image(value, max_pixels=DEFAULT_MAX_PIXELS)
            if problem:
                rejected[row] = {"reason": image_skip_reason(problem)}
            else:
                images[row] = _stored_image(value)
    else:
        images = stage(STAGES[1])(todo, lambda batch: models.images.generate(
            [captions[r] for r in batch], [row_seed(config.seed, r, "image") for r in batch]))
    todo = [r for r in todo if r in images]

    # 3. negative images
    negative_images: dict[int, Any] = {}
    if config.t2i:
        negative_images = stage(STAGES[2])(todo, lambda batch: models.images.generate(
            [negatives[r][0] for r in batch], [row_seed(config.seed, r, "negative_image") for r in batch]))
        todo = [r for r in todo if r in negative_images]

    # 4. CLIP triplet scores
    clip_scores: dict[int, float] = {}
    if config.clip_model:
        clip_scores = stage(STAGES[3])(todo, lambda batch: models.clip.triplet_scores(
            [images[r] for r in batch], [captions[r] for r in batch],
            [negative_images[r] for r in batch], [negatives[r][0] for r in batch]).tolist())
        todo = [r for r in todo if r in clip_scores]

    # 5. VQA quality scores
    vqa_scores: dict[int, float | None] = {}
    if config.vqa_model:
        results = stage(STAGES[4])(todo, lambda batch: models.quality.check(
            [negative_images[r] for r in batch], [negatives[r][0] for r in batch],
            seed=row_seed(config.seed, first_row, "questions")))
        vqa_scores = {row: result.vqa_score for row, result in results.items()}
        todo = [r for r in todo if r in results]

    written = []
    for row in todo:
        record = {
            schema.IMAGE: images[row],
            schema.CAPTION: captions[row],
            schema.NEGATIVE_IMAGE: negative_images.get(row),
            schema.NEGATIVE_CAPTION: negatives[row][0],
            schema.ID: str(row),
            schema.NEGATIVE_KIND: negatives[row][1],
        }
        if config.clip_model:
            record[schema.CLIP_SCORE] = clip_scores[row]
        if config.vqa_model:
            record[schema.VQA_SCORE] = vqa_scores[row]
        if config.t2i:
            record["negative_image_seed"] = row_seed(config.seed, row, "negative_image")
        if config.t2i and not config.image_column:
            record["image_seed"] = row_seed(config.seed, row, "image")
        written.append(record)
    return written, rejected, failed, timings, [r for r in shortened if r not in rejected and r not in failed]


def _existing_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist() if path.exists() else []


def _run_shard(plan: _Plan, folder: OutputFolder, index: int, record: dict[str, Any] | None, models: _Models,
               bars: dict[str, Any]) -> dict[str, Any]:
    shard_range = plan.shard_rows(index)
    if record is None:
        rows, kept, rejected, earlier_shortened = list(shard_range), [], {}, []
    else:  # only the rows that failed last time; the written ones stay
        rows = sorted(int(r) for r in record["failed"])
        kept = [r for r in _existing_rows(_shard_path(plan, index)) if int(r[schema.ID]) not in rows]
        rejected = dict(record["rejected"])
        earlier_shortened = [r for r in record.get("shortened", []) if r not in rows]
    written, new_rejected, failed, timings, shortened = _process_shard(plan, index, rows, models, bars)
    merged = sorted(kept + written, key=lambda r: int(r[schema.ID]))
    write_parquet_shard(merged, _shard_path(plan, index), plan.features)
    rejected.update({str(r): v for r, v in new_rejected.items()})
    attempts = (record or {}).get("attempts", 0) + 1
    new_record = {
        "shard": index, "rows": [shard_range.start, shard_range.stop], "written": len(merged),
        "rejected": rejected, "failed": {str(r): v for r, v in failed.items()}, "stages": timings,
        "shortened": sorted(earlier_shortened + shortened), "attempts": attempts,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    folder.record(index, new_record)  # after the parquet: a record means the shard is there
    return new_record


# --------------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------------


def _format_throughput(timings: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: (t["rows"] / t["seconds"] if t["seconds"] > 0 else float("inf")) for name, t in timings.items()}


def _add_timings(total: dict[str, dict[str, float]], timings: dict[str, dict[str, float]]) -> None:
    for name, t in timings.items():
        entry = total.setdefault(name, {"rows": 0, "seconds": 0.0})
        entry["rows"] += t["rows"]
        entry["seconds"] += t["seconds"]


def _cpu_only(config: SynthesisConfig) -> bool:
    """Whether the processes run on CPU: asked for (``ACCELERATE_USE_CPU=1``, ``--device cpu``) or no accelerator.

    `PartialState` needs to be told, or CPU processes started by ``accelerate launch`` each run alone (gloo is only
    set up with ``cpu=True``)."""
    import torch
    from accelerate.utils import is_mlu_available, is_npu_available, is_xpu_available, parse_flag_from_env

    if parse_flag_from_env("ACCELERATE_USE_CPU") or (config.device or "").startswith("cpu"):
        return True
    return not (torch.cuda.is_available() or is_xpu_available() or is_npu_available() or is_mlu_available())


def run_synthesis(config: SynthesisConfig) -> SynthesisReport:
    """Run (or resume) a synthesis job in this process; under ``accelerate launch`` each process takes its shards.

    Returns the folder's `SynthesisReport` (on every process; the card and manifest are written by the main one).

    Raises:
        SynthesisError: bad input or options, or an output folder from another configuration (before any model is
            loaded).
    """
    from accelerate import PartialState

    watch_run()  # a process of a multi-process run ends with its launcher
    state = PartialState(cpu=_cpu_only(config))
    device = config.device or str(state.device)
    plan = _prepare(config, device)
    folder = _folder(plan)
    if state.is_main_process:
        folder.hold()  # one live run per folder: the main process holds it for all of them
    try:
        return _synthesize(config, state, plan, folder, device)
    finally:
        folder.release()


def _synthesize(config: SynthesisConfig, state, plan: _Plan, folder: OutputFolder, device: str) -> SynthesisReport:
    from tqdm.auto import tqdm

    folder.check()
    state.wait_for_everyone()  # every process has looked at the folder before the main one writes to it

    mine = range(state.process_index, plan.num_shards, state.num_processes)
    pending = []
    for index in mine:
        record = folder.record_for(index)
        if record is None or record["failed"]:
            pending.append((index, record))
    rows_todo = sum(len(plan.shard_rows(i)) if r is None else len(r["failed"]) for i, r in pending)
    prefix = f"[process {state.process_index}/{state.num_processes}]"
    logger.info("%s %d of its %d shards to do (%d rows); %d shards in all.", prefix, len(pending), len(mine),
                rows_todo, plan.num_shards)
    try:  # a model that fails to load claims no folder
        models = _load_models(config, device) if pending else None
    except (ValueError, OSError) as error:
        raise SynthesisError(f"Could not load the models: {error}") from error
    if state.is_main_process:
        folder.claim()
    state.wait_for_everyone()

    totals: dict[str, dict[str, float]] = {}
    if pending:
        show = config.progress and state.is_local_main_process
        stages = [STAGES[0]] + ([STAGES[1]] if not config.image_column else []) + \
            ([STAGES[2]] if config.t2i else []) + ([STAGES[3]] if config.clip_model else []) + \
            ([STAGES[4]] if config.vqa_model else [])
        bars = {name: tqdm(total=rows_todo, desc=f"{name}", unit="row", position=n, disable=not show, leave=True)
                for n, name in enumerate(stages)}
        try:
            for index, record in pending:
                new_record = _run_shard(plan, folder, index, record, models, bars)
                _add_timings(totals, new_record["stages"])
        finally:
            for bar in bars.values():
                bar.close()
        for name, rate in _format_throughput(totals).items():
            logger.info("%s %s: %d rows in %.1f s (%.2f rows/s)", prefix, name, totals[name]["rows"],
                        totals[name]["seconds"], rate)

    state.wait_for_everyone()
    report = _summarize(plan, folder)
    if state.is_main_process:
        _finish(plan, report)
    state.wait_for_everyone()
    import torch.distributed as dist

    if state.num_processes > 1 and dist.is_available() and dist.is_initialized():
        # Leave together: a process group torn down at interpreter exit, after a peer has gone, can block forever.
        dist.destroy_process_group()
    return report


def _summarize(plan: _Plan, folder: OutputFolder) -> SynthesisReport:
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


def _finish(plan: _Plan, report: SynthesisReport) -> None:
    """Card, VQA summary, manifest and (when asked) the CLIP-filtered copy, once every shard exists."""
    config = plan.config
    if report.shards_done == report.shards:
        if config.vqa_model:
            import pyarrow.parquet as pq

            from .quality import summarize_vqa_scores

            scores = []
            for index in range(plan.num_shards):
                scores += pq.read_table(_shard_path(plan, index), columns=[schema.VQA_SCORE]).column(0).to_pylist()
            report.vqa = summarize_vqa_scores(scores)
        write_dataset_card(plan.out, features=plan.features, pretty_name="TripletData (synthesized)",
                           details=_card_details(config, report))
        if report.complete and (config.keep_top_k is not None or config.min_clip_score is not None):
            from .filters import filter_tripletdata

            report.filtered = filter_tripletdata(plan.out, plan.out / "filtered", top_k=config.keep_top_k,
                                                 threshold=config.min_clip_score, progress=config.progress)
    manifest = {
        "complete": report.complete, "rows": report.rows, "written": report.written, "rejected": report.rejected,
        "failed": report.failed, "shortened_captions": report.shortened, "shards": report.shards, "shards_done": report.shards_done,
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
