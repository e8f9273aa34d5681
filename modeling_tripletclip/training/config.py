"""The trainer's configuration: one dataclass, read from flags and/or a YAML file (flags win) by the package's
command-line convention (`dataset_builders.utils.options`, transformers' `HfArgumentParser`), validated before any
model or data is touched, and saved next to every checkpoint.

Flag names follow transformers' and diffusers' example scripts (`--output_dir`, `--train_batch_size`,
`--max_train_steps`, `--checkpointing_steps`, `--resume_from_checkpoint`, ...). Defaults follow the paper (AdamW,
lr 5e-4, weight decay 0.5, betas (0.9, 0.999), eps 1e-8, warmup then cosine) and open_clip's conventions (no weight
decay on biases, norms, the logit scale and other 1-d parameters; logit scale clamped to at most ln 100 after each
step), except where the built-in world needs a CPU-sized run (the `tiny` preset's defaults are stated in README).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataset_builders.sources import BUILTIN_WORLD
from dataset_builders.utils import atomic

from ..loading import checkpoint_format_option
from ..losses import LOSS_TYPES, Objective, check_cyclip_weights, objective

DEFAULT_OUTPUT_DIR = "outputs/tripletclip-world"
DEFAULT_WORLD_NUM_TRAIN = 10_000
FREEZE_CHOICES = ("none", "vision", "text")
REPORT_CHOICES = ("auto", "jsonl", "tensorboard", "wandb", "all")


@dataclass
class TrainingConfig:
    """Everything a training run needs. Each field is a command-line flag of the same name."""

    # ---- output and bookkeeping
    output_dir: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "where checkpoints and the final model go"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "allow an output_dir that holds a run with another configuration"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the model initialisation, data order and world"})
    # ---- model
    preset: str | None = field(
        default=None, metadata={"help": "start from a random model of a preset: 'tiny' (CPU) or 'vit-b-32' (paper)"}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "start from a CLIP or TripletCLIP checkpoint (Hub id or folder) to fine-tune"}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "tokenizer for a preset model (e.g. openai/clip-vit-base-patch32); default: trained on the "
                  "training captions"},
    )
    loss_type: str = field(default="tripletclip", metadata={"help": f"objective: one of {', '.join(LOSS_TYPES)}"})
    local_loss: bool = field(default=False, metadata={"help": "open_clip's memory-saving local loss across processes"})
    cyclip_in_modal_weight: float = field(default=0.0, metadata={
        "help": "add CyCLIP's in-modal consistency term with this weight to any --loss_type (CyCLIP's paper: 0.25)"})
    cyclip_cross_modal_weight: float = field(default=0.0, metadata={
        "help": "add CyCLIP's cross-modal consistency term with this weight (CyCLIP's paper: 0.25)"})
    freeze: str = field(default="none", metadata={"help": "freeze a tower (LiT-style ablation): none, vision or text"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (peft) instead of the full model"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="q_proj,v_proj", metadata={"help": "comma-separated module names LoRA adapts"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward"})
    # ---- data
    dataset: str = field(
        default=BUILTIN_WORLD,
        metadata={"help": "'world' (built-in, generated on first use), a Hub dataset id (e.g. "
                  "TripletCLIP/TripletCLIP-High-Quality), a local folder (Hub layout, or holding WebDataset .tar shards), "
                  "or shards as paths, globs or brace ranges", "nargs": "+"},
    )
    dataset_split: str = field(default="train", metadata={"help": "split of the dataset to train on"})
    streaming: bool = field(default=False, metadata={"help": "stream the dataset instead of loading it"})
    world_num_train: int | None = field(default=None, metadata={
        "help": f"training scenes of the built-in world (default: {DEFAULT_WORLD_NUM_TRAIN}, or those of the world in "
                f"--world_dir)"})
    world_seed: int | None = field(default=None, metadata={
        "help": "seed of the built-in world (default: --seed, or the seed of the world in --world_dir)"})
    world_dir: str | None = field(
        default=None, metadata={"help": "where the built-in world is cached (default: ~/.cache/tripletclip/world-...)"}
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "data loading worker processes per process"})
    ddp_timeout: int = field(default=1800, metadata={
        "help": "seconds a process waits for the others in a collective before the run stops with a message naming "
                "the process that was lost (as in transformers' TrainingArguments)"})
    reduced_image_decoding: bool = field(
        default=True,
        metadata={"help": "decode large JPEGs at a reduced scale and resize only the centre crop (faster, within a "
                  "documented few 8-bit levels of the processor's pixels); --reduced_image_decoding false gives the "
                  "processor's exact pixels"},
    )
    # ---- optimisation
    train_batch_size: int = field(
        default=64,
        metadata={"help": "triplets per contrastive batch across ALL processes (each process gets "
                  "train_batch_size / num_processes); the loss sees all of them at once"},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "micro-batches per optimizer step. Each micro-batch is its own contrastive batch: "
                  "accumulation does NOT enlarge the set of in-batch negatives"},
    )
    max_train_steps: int = field(default=600, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.5, metadata={"help": "AdamW weight decay (not on biases/norms/logit scale)"})
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 disables)"})
    lr_warmup_steps: int = field(default=50, metadata={"help": "linear warmup steps before cosine decay"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "cosine or constant (after warmup)"})
    logit_scale_max: float = field(default=100.0, metadata={"help": "clamp exp(logit_scale) to at most this"})
    # ---- checkpoints and logging
    checkpointing_steps: int = field(default=200, metadata={"help": "save a resumable checkpoint every N steps"})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "keep the last K checkpoints"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder to continue from"}
    )
    logging_steps: int = field(default=10, metadata={"help": "log metrics every N steps"})
    report_to: str = field(
        default="auto",
        metadata={"help": "trackers: auto (tensorboard when installed, always a JSON-lines file), jsonl, "
                  "tensorboard, wandb, all"},
    )
    eval_steps: int = field(default=0, metadata={"help": "evaluate on the world's benchmarks every N steps (0: at the end)"})
    eval_benchmarks: str = field(
        default="sugarcrepe,winoground,retrieval",
        metadata={"help": "benchmarks of the built-in world to evaluate on (comma-separated); empty disables"},
    )
    eval_before_training: bool = field(
        default=True, metadata={"help": "also evaluate the untrained model, for the comparison table"}
    )
    eval_world_dir: str | None = field(default=None, metadata={
        "help": "evaluate on the benchmarks of this world folder instead of the training world's (e.g. a validation "
                "world: `tripletclip data world --benchmark_split validation`); also with a --dataset other than "
                "the world"})
    save_first_step_gradients: str | None = field(
        default=None, metadata={"help": "diagnostics: save the gradients of the first optimizer step to this file"}
    )
    checkpoint_format: str = checkpoint_format_option()
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "push the final model (weights, processor, card with results) to the Hub, as "
                  "`tripletclip push model` does"},
    )
    hub_model_id: str | None = field(default=None, metadata={"help": "the Hub repository to push to (namespace/name)"})
    hub_private_repo: bool = field(default=False, metadata={"help": "create the Hub repository as private"})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or `hf auth login`)"})

    # ------------------------------------------------------------------------------------------------ helpers

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        atomic.write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @property
    def model_source(self) -> str:
        return self.model_name_or_path or f"preset:{self.preset or 'tiny'}"

    @property
    def is_world(self) -> bool:
        return self.dataset == BUILTIN_WORLD

    @property
    def world_settings(self) -> tuple[int, int]:
        """(training scenes, seed) of the built-in world to generate when none is there."""
        num_train = self.world_num_train if self.world_num_train is not None else DEFAULT_WORLD_NUM_TRAIN
        return num_train, self.world_seed if self.world_seed is not None else self.seed

    def run_identity(self) -> dict[str, Any]:
        """The fields that define *what* is trained: a resumed or repeated run must agree on all of them."""
        volatile = {
            "resume_from_checkpoint", "overwrite_output_dir", "logging_steps", "report_to", "dataloader_num_workers",
            "checkpointing_steps", "checkpoints_total_limit", "eval_steps", "eval_before_training", "max_train_steps",
            "save_first_step_gradients", "push_to_hub", "hub_model_id", "hub_private_repo", "hub_token", "world_dir",
            "ddp_timeout", "eval_world_dir",
        }
        return {key: value for key, value in self.to_dict().items() if key not in volatile}

    def validate(self) -> None:
        """Reject impossible settings with a message that says what to change. Runs before anything is loaded."""
        problems = []
        try:
            objective(self.loss_type)
        except ValueError:
            problems.append(f"--loss_type {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        try:
            check_cyclip_weights(self.cyclip_in_modal_weight, self.cyclip_cross_modal_weight)
        except ValueError as error:
            problems.append(f"--{error}")
        if self.preset and self.model_name_or_path:
            problems.append("give either --preset (a random model) or --model_name_or_path (a checkpoint), not both")
        if self.preset is not None:
            from ..presets import PRESETS

            if self.preset not in PRESETS:
                problems.append(f"--preset {self.preset!r} is not one of {', '.join(sorted(PRESETS))}")
        if self.freeze not in FREEZE_CHOICES:
            problems.append(f"--freeze {self.freeze!r} is not one of {', '.join(FREEZE_CHOICES)}")
        if self.lora and self.freeze != "none":
            problems.append(
                "--lora and --freeze both decide which parameters train; LoRA already freezes the base model. "
                "Use one of them (to adapt only one tower with LoRA, narrow --lora_target_modules instead)"
            )
        if self.lora and not self.lora_target_modules.strip():
            problems.append("--lora needs --lora_target_modules (e.g. q_proj,v_proj)")
        for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "checkpointing_steps",
                     "logging_steps", "checkpoints_total_limit", "lr_scheduler"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 1:
                problems.append(f"--{name} must be at least 1 (got {value})")
        if self.lr_scheduler not in ("cosine", "constant"):
            problems.append(f"--lr_scheduler {self.lr_scheduler!r} is not one of cosine, constant")
        if self.learning_rate <= 0:
            problems.append(f"--learning_rate must be positive (got {self.learning_rate})")
        if self.lr_warmup_steps < 0 or self.eval_steps < 0 or self.dataloader_num_workers < 0:
            problems.append("--lr_warmup_steps, --eval_steps and --dataloader_num_workers cannot be negative")
        if self.ddp_timeout < 1:
            problems.append(f"--ddp_timeout must be at least 1 second (got {self.ddp_timeout})")
        if self.world_num_train is not None and self.world_num_train < 1:
            problems.append(f"--world_num_train must be at least 1 (got {self.world_num_train})")
        if self.report_to not in REPORT_CHOICES:
            problems.append(f"--report_to {self.report_to!r} is not one of {', '.join(REPORT_CHOICES)}")
        if self.logit_scale_max <= 1:
            problems.append(f"--logit_scale_max must be above 1 (got {self.logit_scale_max})")
        if self.push_to_hub and not self.hub_model_id:
            problems.append("--push_to_hub needs --hub_model_id (e.g. your-name/tripletclip-world)")
        if problems:
            raise ValueError("Invalid training configuration:\n  - " + "\n  - ".join(problems))

    def validate_world_size(self, num_processes: int) -> None:
        if self.train_batch_size % num_processes:
            raise ValueError(
                f"--train_batch_size {self.train_batch_size} is not divisible by the {num_processes} processes of "
                f"this launch: every process must hold the same number of triplets for the cross-process loss. "
                f"Use a multiple of {num_processes}, e.g. {num_processes * max(1, self.train_batch_size // num_processes)}."
            )

    @property
    def objective(self) -> Objective:
        """The objective ``--loss_type`` names (`losses.OBJECTIVES`): what it needs, its label."""
        return objective(self.loss_type)


def parse_args(argv: list[str] | None = None) -> TrainingConfig:
    """The configuration from flags (and ``--config FILE.yaml``; flags win), validated."""
    from dataset_builders.utils.options import parse_options

    return parse_options(TrainingConfig, argv, prog="train_accelerate.py", description=DESCRIPTION)


DESCRIPTION = ("Train TripletCLIP (or its baselines) with Accelerate. With no arguments: the tiny preset on the "
               "built-in compositional world, TripletCLIP loss, evaluation table at the end.")


def load_saved_config(path: str | Path) -> TrainingConfig:
    values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return TrainingConfig(**values)
