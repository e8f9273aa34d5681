"""The harness's inputs, built once per run: a small world, the released layout's shards made from it, and a random
tiny checkpoint; and the check of one invalid configuration."""

from __future__ import annotations

import io
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
    from modeling_tripletclip.training.checkpoints import claim_output_dir, release_output_dir
    from modeling_tripletclip.training.config import TrainingConfig

    out = root / "claimed-run"
    if not out.is_dir():
        claim_output_dir(TrainingConfig(output_dir=str(out), world_dir=str(inputs.world)), out)
        release_output_dir(out)  # a run that has ended
    return out


def bad_config_paths(inputs: Inputs, root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    return {"world": inputs.world, "checkpoint": inputs.checkpoint, "not_clip": not_clip_checkpoint(root),
            "run": claimed_run(inputs, root), "out": root / "out"}


def _judge(config, returncode: int, output: str) -> str | None:
    if "FORBIDDEN" in output:
        return "a model, dataset or image was read before the configuration was refused"
    if "CRASH:" in output or ("Traceback" in output and config.processes == 1):  # (a launcher prints its own)
        return f"crashed: {output.strip().splitlines()[-1:]}"
    if returncode == 0:
        return "accepted"
    missing = [fragment for fragment in config.message if fragment.lower() not in output.lower()]
    if missing:
        return f"the message does not say {missing}: {output.strip().splitlines()[-1:]}"
    if config.processes == 1 and returncode != 2:
        return f"exit status {returncode}, not 2"
    return None


def check_bad_configs(configs, inputs: Inputs, root: Path, timeout: float = 600) -> dict[str, str | None]:
    """Run each invalid configuration as a user would, with loading guarded (``inject/sitecustomize.py``): per
    configuration's name, None when it was refused with exit status 2 and a message naming the fix, before any
    model, dataset or image was read; otherwise what went wrong.

    One-process command lines run one after the other in a single guarded Python process
    (`benchmarks.faults.refusals`); two-process ones each through ``accelerate launch``."""
    import json

    from .configs import resolve
    from .disk import with_injection

    paths = bad_config_paths(inputs, root)
    env = with_injection(base_env(), forbid=True)
    problems: dict[str, str | None] = {}
    single = [config for config in configs if config.processes == 1]
    if single:
        request, result = root / "refusals-request.json", root / "refusals-result.json"
        request.write_text(json.dumps([resolve(config, **paths) for config in single]), encoding="utf-8")
        done = subprocess.run([*launch(1), "-m", "benchmarks.faults.refusals", str(request), str(result)], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"The refusal checks did not run:\n{done.stderr[-3000:]}")
        for config, outcome in zip(single, json.loads(result.read_text(encoding="utf-8"))):
            problems[config.name] = _judge(config, outcome["returncode"], outcome["output"])
    for config in configs:
        if config.processes > 1:
            command = [*launch(config.processes), "-m", "modeling_tripletclip.cli", *resolve(config, **paths)]
            done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
            problems[config.name] = _judge(config, done.returncode, done.stdout + done.stderr)
    return {config.name: problems[config.name] for config in configs}


__all__ = ["bad_config_paths", "build_inputs", "check_bad_configs", "claimed_run", "not_clip_checkpoint",
           "tiny_model"]
