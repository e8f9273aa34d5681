"""Shared fixtures: tiny TripletCLIP / CLIP checkpoints built from configs, saved to temporary folders.

Everything is offline: tokenizers are trained on a small caption corpus in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# The tests' models are microscopic: one thread avoids the intra-op overhead that dominates them (and contention
# when the machine is busy). Subprocesses the tests start set their own threads.
torch.set_num_threads(1)

#: Real data the tests read, kept in the repository with their sources and licences (data/*/SOURCES.md): the seven
#: official SugarCrepe annotation files and five public-domain / CC0 photographs.
TEST_DATA = Path(__file__).resolve().parent / "data"

CORPUS = [
    "a red circle to the left of a blue square",
    "two green triangles above a yellow star",
    "a small purple cube below a large orange ball",
    "a photo of a cat",
    "a photo of a dog",
    "a photo of an astronaut",
    "a photo of a horse",
    "a cup of coffee on a table",
    "a rocket on the launch pad",
    "This is a photo of a cat.",
] * 10

# A ~75k-parameter CLIP: every architectural path, milliseconds per step.
TINY_OVERRIDES = {
    "projection_dim": 16,
    "text_config": {
        "vocab_size": 400,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
    },
    "vision_config": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
}


def make_tiny(loss_type: str = "tripletclip", seed: int = 0):
    """A tiny random `TripletCLIPModel` and its processor."""
    import copy

    import torch

    from modeling_tripletclip.presets import create_model_and_processor

    torch.manual_seed(seed)
    return create_model_and_processor("tiny", corpus=CORPUS, loss_type=loss_type, **copy.deepcopy(TINY_OVERRIDES))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """tests/data: a missing fixture is an error, never a skip."""
    missing = [p for p in (TEST_DATA / "images" / "chelsea.png", TEST_DATA / "sugarcrepe" / "add_att.json")
               if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Test data missing from the checkout: {', '.join(map(str, missing))}.")
    return TEST_DATA


@pytest.fixture(scope="session")
def tiny_model_and_processor():
    model, processor = make_tiny()
    model.eval()
    return model, processor


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model_and_processor) -> Path:
    """A saved tiny TripletCLIP checkpoint (weights, remote code, processor)."""
    model, processor = tiny_model_and_processor
    path = tmp_path_factory.mktemp("tiny-tripletclip")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory, tiny_model_and_processor) -> Path:
    """A saved tiny plain `transformers.CLIPModel` checkpoint with its processor."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    model, processor = tiny_model_and_processor
    values = model.config.to_dict()
    for key in ("model_type", "loss_type", "local_loss", "auto_map", "architectures"):
        values.pop(key, None)
    torch.manual_seed(1)
    clip = CLIPModel(CLIPConfig(**values))
    path = tmp_path_factory.mktemp("tiny-clip")
    clip.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def faults_inputs(tmp_path_factory):
    """The fault harness's inputs: a small world, its triplets as released WebDataset shards, a tiny checkpoint."""
    from benchmarks.faults.fixtures import build_inputs

    return build_inputs(tmp_path_factory.mktemp("faults-inputs"))


def serve_hub_dataset(monkeypatch, hub_id: str, folder: Path) -> Path:
    """Serve the Hub dataset ``hub_id`` from the local replica ``folder``: only `datasets.load_dataset`'s network edge
    is replaced; every other value goes to the real function."""
    import datasets

    real = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        return real(str(folder) if path == hub_id else path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return folder
