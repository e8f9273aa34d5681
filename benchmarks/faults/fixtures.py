"""The harness's inputs, built once per run: a small world, the released layout's shards made from it, and a random
tiny checkpoint; and the check of one invalid configuration."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from .jobs import REPO, Inputs, base_env, launch


def build_inputs(root: Path) -> Inputs:
    from dataset_builders.world import generate_world

    root.mkdir(parents=True, exist_ok=True)
    world = generate_world(root / "world", num_train=256, seed=0, num_test=16, sugarcrepe_per_kind=4,
                           num_winoground=8, num_retrieval=8, progress=False)
    shards = _released_shards(world, root / "released", per_shard=40)
    checkpoint = _tiny_checkpoint(world, root / "checkpoint")
    return Inputs(world=world, shards=shards, checkpoint=checkpoint, work=root)


def _released_shards(world: Path, folder: Path, per_shard: int) -> Path:
    """The world's training triplets in the released layout: tar shards of JPEGs and UTF-8 captions."""
    import tarfile

    from PIL import Image

    from dataset_builders import load_tripletdata

    if folder.is_dir() and any(folder.glob("*.tar")):
        return folder
    folder.mkdir(parents=True)
    rows = load_tripletdata(world / "train")
    for start in range(0, len(rows), per_shard):
        with tarfile.open(folder / f"{start // per_shard:05d}.tar", "w") as archive:
            for number in range(start, min(start + per_shard, len(rows))):
                row = rows[number]
                members = {}
                for column, suffix in (("image", "image"), ("negative_image", "neg_image")):
                    buffer = io.BytesIO()
                    row[column].convert("RGB").save(buffer, format="JPEG", quality=90)
                    members[suffix] = buffer.getvalue()
                members["caption"] = row["caption"].encode()
                members["neg_caption"] = row["negative_caption"].encode()
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{number:06d}.{suffix}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    return folder


def _tiny_checkpoint(world: Path, out: Path) -> Path:
    import torch

    from dataset_builders import load_tripletdata
    from modeling_tripletclip.presets import create_model_and_processor, train_tokenizer

    if (out / "model.safetensors").is_file():
        return out
    captions = load_tripletdata(world / "train").select_columns(["caption", "negative_caption"])
    corpus = [text for row in captions for text in row.values()]
    torch.manual_seed(0)
    model, processor = create_model_and_processor("tiny", tokenizer=train_tokenizer(corpus))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_model(inputs: Inputs):
    from modeling_tripletclip.loading import load_model_and_processor

    return load_model_and_processor(str(inputs.checkpoint), device="cpu")


def not_clip_checkpoint(root: Path) -> Path:
    """A BERT checkpoint folder (configuration only): a model path that is not CLIP-like."""
    from transformers import BertConfig

    out = root / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(out)
    return out


def claimed_run(inputs: Inputs, root: Path) -> Path:
    """An output folder claimed by a TripletCLIP-loss run (what a resume with other settings meets)."""
    from modeling_tripletclip.training.checkpoints import claim_output_dir
    from modeling_tripletclip.training.config import TrainingConfig

    out = root / "claimed-run"
    if not out.is_dir():
        claim_output_dir(TrainingConfig(output_dir=str(out), world_dir=str(inputs.world)), out)
    return out


def bad_config_paths(inputs: Inputs, root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    return {"world": inputs.world, "checkpoint": inputs.checkpoint, "not_clip": not_clip_checkpoint(root),
            "run": claimed_run(inputs, root), "out": root / "out"}


def check_bad_config(config, inputs: Inputs, root: Path, timeout: float = 300) -> str | None:
    """Run one invalid configuration as a user would (a subprocess, loading guarded); None when it is refused with
    exit status 2 and a message naming the fix, before any model, dataset or image was read."""
    from .configs import resolve
    from .disk import with_injection

    argv = resolve(config, **bad_config_paths(inputs, root))
    command = [*launch(config.processes), "-m", "modeling_tripletclip.cli", *argv]
    done = subprocess.run(command, env=with_injection(base_env(), forbid=True), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if "FORBIDDEN" in output:
        return "a model, dataset or image was read before the configuration was refused"
    if done.returncode == 0:
        return "accepted"
    missing = [fragment for fragment in config.message if fragment.lower() not in output.lower()]
    if missing:
        return f"the message does not say {missing}: {output.strip().splitlines()[-1:]}"
    if config.processes == 1 and done.returncode != 2:
        return f"exit status {done.returncode}, not 2"
    return None


__all__ = ["bad_config_paths", "build_inputs", "check_bad_config", "claimed_run", "not_clip_checkpoint",
           "tiny_model"]
