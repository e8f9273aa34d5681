"""What a synthesis run is: its options (`SynthesisConfig`), its input cut into shards (`Plan`), the seeds of its
rows, and its claim on the output folder. Everything here runs before a model loads, in the process that starts the
run and again in each task of the pipeline (`dataset_builders.synthesis.pipeline`).

* **Deterministic parts.** Rows are cut into shards of ``rows_per_shard`` consecutive rows; shard ``i`` is task ``i``
  of the datatrove pipeline, whichever executor or worker runs it. A row's seeds depend only on the run's seed and
  the row index (images) or the shard (LLM batches), so a shard comes out the same on any worker, in any run.
* **One configuration per folder.** ``synthesis/config.json`` holds every option that changes the output and a
  fingerprint of the input; a rerun with other options, or on other input, is refused with the differences listed.
* **Bad input fails early**: missing columns, empty input, a model folder of the wrong kind, a GPU-only dtype on CPU,
  an executor that cannot start here, a folder from another configuration: all raise `SynthesisError` before any
  model is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from .. import schema
from ..hub_layout import shard_filename
from ..utils.devices import resolve_dtype
from ..utils.errors import InputError
from ..utils.output_folders import OutputFolder
from .llm import DEFAULT_LLM, LLM_SERVERS, check_causal_lm, check_endpoint
from .prompts import NEGATIVE_CAPTION_PROMPT, negative_caption_prompt
from .t2i import DEFAULT_T2I, check_text_to_image

SPLIT = "train"
STATE_DIR = "synthesis"
#: datatrove's folder of the run (completions, task logs, stats), inside the state folder.
PIPELINE_DIR = f"{STATE_DIR}/pipeline"
NO_RULE_APPLIES = "no_rule_applies"
STAGES = ("negative captions", "images", "negative images", "clip scores", "vqa scores")
EXECUTORS = ("local", "slurm", "ray")
#: Options that do not change what is written; they may differ between a run and its resumption.
RUNTIME_FIELDS = ("output_dir", "keep_top_k", "min_clip_score", "device", "progress", "t2i_batch_size",
                  "t2i_compile", "clip_batch_size", "vqa_batch_size", "executor", "workers", "cpus_per_task",
                  "gpus_per_task", "mem_per_cpu_gb", "partition", "time", "env_command", "llm_endpoint", "llm_api_key",
                  "tp", "dp", "max_concurrent_requests")
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
    llm_server: str = _option("transformers", "how the LLM runs: transformers (in each task's process), vllm or sglang "
                                              "(a server datatrove starts on the task's GPUs), or endpoint (any "
                                              "OpenAI-compatible server at --llm_endpoint)",
                              choices=LLM_SERVERS)
    llm_endpoint: str | None = _option(None, "with --llm_server endpoint: the server's base URL, e.g. "
                                             "http://localhost:8000/v1 (vLLM, SGLang, TGI, `transformers serve`)")
    llm_api_key: str | None = _option(None, "with --llm_server endpoint: the bearer token, if the server wants one")
    tp: int = _option(1, "with --llm_server vllm/sglang: tensor-parallel GPUs per server")
    dp: int = _option(1, "with --llm_server vllm/sglang: data-parallel replicas per server")
    max_concurrent_requests: int = _option(64, "with a server: requests in flight at once")
    llm_batch_size: int = _option(16, "with --llm_server transformers: prompts per generation batch")
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
    t2i_compile: bool = _option(False, "compile the text-to-image denoiser with torch.compile (GPU)")
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
    # ---- where it runs (datatrove: one task per shard)
    executor: str = _option("local", "datatrove executor: local (this machine, --workers at once), slurm (a job "
                                     "array, one task per shard) or ray (the Ray cluster `ray.init()` finds)",
                            choices=EXECUTORS)
    workers: int = _option(1, "tasks run at once (local: processes on this machine; slurm: array tasks at once, 0 for "
                              "no limit; ray: concurrent tasks)")
    cpus_per_task: int = _option(1, "slurm/ray: CPUs per task")
    gpus_per_task: int = _option(0, "slurm/ray: GPUs per task")
    mem_per_cpu_gb: float = _option(2.0, "slurm/ray: memory per CPU in GB")
    partition: str | None = _option(None, "slurm: the partition")
    time: str = _option("24:00:00", "slurm: the time limit of each task")
    env_command: str | None = _option(None, "slurm: a shell line that sets up the environment in each task, e.g. "
                                            "'source .venv/bin/activate'")
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
class Plan:
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


def triplet_features(config: SynthesisConfig) -> datasets.Features:
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


def check_options(config: SynthesisConfig) -> None:
    """The options fit together (and the executor can start); raises `SynthesisError` naming the fix."""
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
    if config.llm_server != "transformers" and not config.llm:
        raise SynthesisError(f"--llm_server {config.llm_server} serves the LLM: give --llm MODEL too.")
    if config.llm_server == "endpoint" and not config.llm_endpoint:
        raise SynthesisError("--llm_server endpoint needs --llm_endpoint URL (an OpenAI-compatible server, e.g. "
                             "http://localhost:8000/v1).")
    if config.workers < 0 or (config.workers == 0 and config.executor == "local"):
        raise SynthesisError(f"--workers must be at least 1, got {config.workers}.")
    check_executor(config)


def check_executor(config: SynthesisConfig) -> None:
    """The executor (and a served LLM's engine) can start from here; else one message naming the fix."""
    if config.executor == "slurm":
        if not config.partition:
            raise SynthesisError("--executor slurm needs --partition NAME (the Slurm partition to run the tasks on).")
        if shutil.which("sbatch") is None:
            raise SynthesisError("--executor slurm submits a job array with `sbatch`, which is not on the PATH here: "
                                 "run the command on a Slurm login node, or use --executor local.")
    if config.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise SynthesisError("--executor ray needs Ray: pip install 'ray[default]' (and `ray start` or a cluster "
                             "address in RAY_ADDRESS), or use --executor local.")
    if config.llm_server in ("vllm", "sglang") and importlib.util.find_spec(config.llm_server) is None:
        raise SynthesisError(f"--llm_server {config.llm_server} starts a {config.llm_server} server, which is not "
                             f"installed: pip install -e '.[{config.llm_server}]' on a CUDA machine, or use "
                             f"--llm_server transformers or endpoint.")


def check_models(config: SynthesisConfig, device: str) -> None:
    """The dtype fits the device and every model folder is of the right kind, before anything loads."""
    try:
        resolve_dtype(config.dtype, device)
        if config.llm and config.llm_server == "transformers":
            check_causal_lm(config.llm)
        if config.llm and config.llm_server == "endpoint":
            check_endpoint(config.llm_endpoint, config.llm, config.llm_api_key)
        if config.question_llm:
            check_causal_lm(config.question_llm)
        if config.t2i:
            check_text_to_image(config.t2i)
    except ValueError as error:
        raise SynthesisError(str(error)) from error


def plan_input(config: SynthesisConfig) -> Plan:
    """Read the input and cut it into shards (the options were checked by `check_options` and `check_models`)."""
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
    return Plan(config, dataset, captions, len(captions), num_shards, triplet_features(config),
                 _captions_fingerprint(captions), Path(config.output_dir).expanduser())


# --------------------------------------------------------------------------------------------------------------------
# Output folder state
# --------------------------------------------------------------------------------------------------------------------


def shard_path(plan: Plan, index: int) -> Path:
    """Where shard ``index`` is written: ``data/train-{index:05d}-of-{shards:05d}.parquet``."""
    return plan.out / "data" / shard_filename(SPLIT, index, plan.num_shards)


def output_folder(plan: Plan) -> OutputFolder:
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




__all__ = ["EXECUTORS", "JOB", "NO_RULE_APPLIES", "PIPELINE_DIR", "Plan", "RUNTIME_FIELDS", "SPLIT", "STAGES",
           "STATE_DIR", "SynthesisConfig", "SynthesisError", "SynthesisReport", "check_executor", "check_models",
           "check_options", "load_input", "output_folder", "plan_input", "row_seed", "shard_path",
           "triplet_features"]
