"""Invalid configurations across the commands: each must be refused before any model is loaded or data is read,
with a message that names the fix.

Each :class:`BadConfig` is a `tripletclip` command line (``{world}``, ``{checkpoint}``, ``{not_clip}``,
``{run}`` and ``{out}`` are filled in by :func:`resolve`), the words the error message must contain, and whether it
needs a two-process launch. The tests run every one of them; the fault harness counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BadConfig:
    name: str
    argv: tuple[str, ...]
    message: tuple[str, ...]  # fragments the error must contain (case-insensitive)
    processes: int = 1


def _train(*flags: str) -> tuple[str, ...]:
    return ("train", "--output_dir", "{out}", "--world_dir", "{world}", *flags)


BAD_CONFIGS: list[BadConfig] = [
    # ---- training
    BadConfig("LoRA with a frozen tower", _train("--lora", "--freeze", "vision"), ("--lora", "--freeze", "one of them")),
    BadConfig("negative learning rate", _train("--learning_rate=-1e-4"), ("--learning_rate", "positive")),
    BadConfig("zero training steps", _train("--max_train_steps", "0"), ("--max_train_steps", "at least 1")),
    BadConfig("zero batch", _train("--train_batch_size", "0"), ("--train_batch_size", "at least 1")),
    BadConfig("zero accumulation", _train("--gradient_accumulation_steps", "0"),
              ("--gradient_accumulation_steps", "at least 1")),
    BadConfig("negative warmup", _train("--lr_warmup_steps=-5"), ("--lr_warmup_steps", "negative")),
    BadConfig("negative workers", _train("--dataloader_num_workers=-2"), ("--dataloader_num_workers", "negative")),
    BadConfig("unknown loss", _train("--loss_type", "triplet"), ("--loss_type", "tripletclip")),
    BadConfig("unknown preset", _train("--preset", "vit-h-99"), ("--preset", "tiny")),
    BadConfig("preset and checkpoint together", _train("--preset", "tiny", "--model_name_or_path", "{checkpoint}"),
              ("--preset", "--model_name_or_path", "not both")),
    BadConfig("unknown freeze choice", _train("--freeze", "everything"), ("--freeze", "none")),
    BadConfig("LoRA without target modules", _train("--lora", "--lora_target_modules", " "),
              ("--lora_target_modules",)),
    BadConfig("unknown scheduler", _train("--lr_scheduler", "linear"), ("--lr_scheduler", "cosine")),
    BadConfig("unknown tracker", _train("--report_to", "mlflow"), ("--report_to", "jsonl")),
    BadConfig("temperature cap below one", _train("--logit_scale_max", "0.5"), ("--logit_scale_max", "above 1")),
    BadConfig("push without a repository", _train("--push_to_hub"), ("--hub_model_id",)),
    BadConfig("batch not divisible by the processes", _train("--train_batch_size", "7"),
              ("not divisible", "2 processes", "multiple of 2"), processes=2),
    BadConfig("resume with a different loss", ("train", "--output_dir", "{run}", "--world_dir", "{world}",
                                                "--loss_type", "clip", "--resume_from_checkpoint", "latest"),
              ("cannot resume", "loss_type", "same settings")),
    BadConfig("world seed differs from the cached world's", _train("--world_seed", "7"),
              ("seed 0", "--world_seed 0", "--world_dir")),
    BadConfig("world size differs from the cached world's", _train("--world_num_train", "999"),
              ("--world_num_train", "--world_dir")),
    BadConfig("model path that is not CLIP-like", _train("--model_name_or_path", "{not_clip}"),
              ("not a clip", "bert")),
    BadConfig("model path that does not exist", _train("--model_name_or_path", "{out}/no-such-model"),
              ("no-such-model",)),
    BadConfig("dataset that does not exist", ("train", "--output_dir", "{out}", "--dataset", "{out}/no-such-data"),
              ("no-such-data",)),
    # ---- synthesis
    BadConfig("synthesis with both an LLM and rules", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir",
                                                       "{out}", "--rules", "--llm", "{checkpoint}",
                                                       "--image_column", "image"), ("--llm", "--rules")),
    BadConfig("synthesis without images", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir", "{out}",
                                           "--rules"), ("--image_column", "--t2i")),
    BadConfig("synthesis with empty shards", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir", "{out}",
                                              "--rules", "--image_column", "image", "--rows_per_shard", "0"),
              ("--rows_per_shard", "at least 1")),
    BadConfig("CLIP filter without negative images", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir",
                                                      "{out}", "--rules", "--image_column", "image",
                                                      "--clip_model", "{checkpoint}"), ("--clip_model", "--t2i")),
    BadConfig("top-k without CLIP scores", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir", "{out}",
                                            "--rules", "--image_column", "image", "--keep_top_k", "5"),
              ("--keep_top_k", "--clip_model")),
    BadConfig("VQA check without negative images", ("synthesize", "--dataset", "{world}/train", "--caption_column", "caption", "--output_dir",
                                                    "{out}", "--rules", "--image_column", "image", "--vqa_model",
                                                    "{checkpoint}"), ("--vqa_model", "--t2i")),
    # ---- evaluation
    BadConfig("evaluation without a model", ("evaluate", "--world", "{world}", "--output_dir", "{out}"),
              ("--model",)),
    BadConfig("the same model twice", ("evaluate", "--model", "{checkpoint}", "--model", "{checkpoint}", "--world",
                                       "{world}", "--output_dir", "{out}"), ("twice",)),
    BadConfig("zero evaluation batch", ("evaluate", "--model", "{checkpoint}", "--world", "{world}", "--batch_size",
                                        "0", "--output_dir", "{out}"), ("--batch_size", "at least 1")),
    BadConfig("zero items", ("evaluate", "--model", "{checkpoint}", "--world", "{world}", "--max_items", "0",
                             "--output_dir", "{out}"), ("--max_items", "at least 1")),
    BadConfig("unknown benchmark", ("evaluate", "--model", "{checkpoint}", "--benchmark", "imagenet-21k",
                                    "--data", "{world}", "--output_dir", "{out}"), ("--benchmark", "sugarcrepe")),
    BadConfig("evaluating a model that is not CLIP-like", ("evaluate", "--model", "{not_clip}", "--world", "{world}",
                                                           "--output_dir", "{out}"), ("not a clip",)),
    # ---- data
    BadConfig("a world without training triplets", ("data", "world", "--output_dir", "{out}/w", "--num_train", "0"),
              ("--num_train", "at least 1")),
    BadConfig("a world of tiny images", ("data", "world", "--output_dir", "{out}/w", "--image_size", "4"),
              ("--image_size", "at least")),
    BadConfig("a world with no workers", ("data", "world", "--output_dir", "{out}/w", "--num_proc", "0"),
              ("--num_proc", "at least 1")),
    BadConfig("inspecting a grid of no rows", ("data", "inspect", "--dataset", "{world}", "--rows", "0"),
              ("--rows", "at least 1")),
    # ---- publishing
    BadConfig("push without a model", ("push", "model", "--repo_id", "you/model", "--dry_run"),
              ("--model_name_or_path",)),
    BadConfig("push to a malformed repository id", ("push", "model", "--model_name_or_path", "{checkpoint}",
                                                    "--repo_id", "not a repo id", "--dry_run"), ("repo",)),
]


def resolve(config: BadConfig, **paths: str | Path) -> list[str]:
    """The command line of ``config`` with its placeholders filled in."""
    values = {key: str(value) for key, value in paths.items()}
    return [part.format(**values) for part in config.argv]


__all__ = ["BAD_CONFIGS", "BadConfig", "resolve"]
