"""Converters into TripletCLIP checkpoints: read a checkpoint, write ours (weights in one of
`loading.CHECKPOINT_FORMATS`, processor, card).

- ``tripletclip convert-clip --model_name_or_path SOURCE --output_dir DIR`` (:func:`convert_clip`): any CLIP
  checkpoint (Hub id or folder) as a TripletCLIP checkpoint with bit-identical weights and its processor, ready to
  fine-tune with the triplet loss.
- ``tripletclip convert-official --model_name_or_path SOURCE --output_dir DIR`` (:func:`convert_official`): a checkpoint
  of the official TripletCLIP release as one checkpoint that ``AutoModel.from_pretrained`` loads, with no code from the
  original repository downloaded or executed. The tensors are mapped by ``modeling_tripletclip.official_weights``.

Both write their output folder atomically: a folder that appears under its name is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dataset_builders.utils import atomic

from ..official_weights import (
    OFFICIAL_LOGIT_SCALE,
    OFFICIAL_SUBFOLDERS,
    OfficialCheckpointError,
    conversion_notes,
    map_text_tower,
    map_vision_tower,
    official_loss_type,
    official_to_tripletclip,
)

DEFAULT_PROCESSOR = "openai/clip-vit-base-patch32"


def _claim_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OfficialCheckpointError(f"--output_dir {out} already exists and is not empty; give a new folder.")


def convert_clip(source: str | os.PathLike, out: str | os.PathLike, loss_type: str = "tripletclip",
                 checkpoint_format: str = "clip") -> Path:
    """Save ``source`` (a CLIP checkpoint) as a TripletCLIP checkpoint in ``out``, processor included, in one of
    `loading.CHECKPOINT_FORMATS`."""
    from ..loading import check_checkpoint_format, load_processor, save_checkpoint
    from ..modeling_tripletclip import TripletCLIPModel

    out = Path(out)
    check_checkpoint_format(checkpoint_format)
    model = TripletCLIPModel.from_clip(str(source), loss_type=loss_type)
    processor = load_processor(source)
    with atomic.atomic_path(out, folder=True) as tmp:
        save_checkpoint(model, tmp, processor=processor, checkpoint_format=checkpoint_format)
    return out


def load_official_towers(source: str | os.PathLike) -> dict[str, tuple[dict[str, Any], dict[str, Any], str]]:
    """``{"text"|"vision": (state dict, config dict, description)}`` of an official checkpoint folder or Hub id.

    Only ``config.json`` and safetensors files are read (downloaded, for a Hub id); the release's Python files are
    never downloaded nor run.
    """
    from safetensors.torch import load_file

    folder = Path(source).expanduser()
    if not folder.exists():
        folder = _download_official(str(source))
    towers = {}
    for tower, subfolder in OFFICIAL_SUBFOLDERS.items():
        path = folder / subfolder
        if not path.is_dir():
            raise OfficialCheckpointError(
                f"{folder} has no {subfolder}/ folder. An official TripletCLIP checkpoint holds text-encoder/ and "
                f"vision-encoder/, each with config.json and model.safetensors (e.g. TripletCLIP/CC3M_TripletCLIP_ViTB12)."
            )
        files = sorted(path.glob("*.safetensors"))
        if not files:
            pickled = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
            raise OfficialCheckpointError(
                f"{path} has no .safetensors weights" + (f" (only {', '.join(pickled)}, which is not loaded: pickled "
                                                          f"weights can run code)" if pickled else "") + "."
            )
        state: dict[str, Any] = {}
        for file in files:
            part = load_file(file)
            overlap = set(part) & set(state)
            if overlap:
                raise OfficialCheckpointError(f"{path}: tensors stored twice across shards: {sorted(overlap)[:5]}")
            state.update(part)
        config_path = path / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        towers[tower] = (state, config, f"{subfolder}/ of {source}")
    return towers


def _download_official(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled

    patterns = [f"{sub}/{name}" for sub in OFFICIAL_SUBFOLDERS.values() for name in ("config.json", "*.safetensors")]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (OfflineModeIsEnabled, HFValidationError, OSError) as error:
        raise OfficialCheckpointError(
            f"{repo_id!r} is not a local folder and could not be downloaded from the Hub ({type(error).__name__}: "
            f"{error}). Give a folder holding text-encoder/ and vision-encoder/, or a Hub id such as "
            f"TripletCLIP/CC3M_TripletCLIP_ViTB12 on a machine with network access."
        ) from None


def convert_official(
    source: str | os.PathLike,
    out: str | os.PathLike,
    processor: str | os.PathLike = DEFAULT_PROCESSOR,
    loss_type: str | None = None,
    logit_scale: float = OFFICIAL_LOGIT_SCALE,
    checkpoint_format: str = "clip",
):
    """Convert an official TripletCLIP checkpoint (folder or Hub id) into one TripletCLIP checkpoint in ``out``.

    Args:
        source: a folder (or Hub id) holding ``text-encoder/`` and ``vision-encoder/``.
        out: the output folder; must not exist or be empty. Written atomically.
        processor: the processor to save with it (tokenizer + image processor); the official models use OpenAI
            CLIP's, ``openai/clip-vit-base-patch32``.
        loss_type: the objective recorded in the config (default: read from the repository name).
        logit_scale: the fixed temperature of the official evaluation, 100; stored as ``ln(logit_scale)``.
        checkpoint_format: one of `loading.CHECKPOINT_FORMATS` (default ``clip``: loads in every CLIP client).

    Returns:
        ``(out, text mapping, vision mapping)``: the folder and what was recognised in each tower.
    """
    from collections.abc import Mapping

    from transformers import AutoProcessor

    from ..loading import check_checkpoint_format, save_checkpoint
    from ..modeling_tripletclip import TripletCLIPModel
    from ..presets import align_text_config
    from .cards import render_model_card

    out = Path(out)
    _claim_output(out)
    check_checkpoint_format(checkpoint_format)
    if logit_scale <= 0:
        raise OfficialCheckpointError(f"The logit scale must be positive (the official value is 100), got {logit_scale}.")
    loss_type = loss_type or official_loss_type(str(source))
    try:
        from ..losses import check_loss_type

        check_loss_type(loss_type)
    except ValueError as error:
        raise OfficialCheckpointError(str(error)) from None

    towers = load_official_towers(source)
    text = map_text_tower(*towers["text"][:2], where=towers["text"][2])
    vision = map_vision_tower(*towers["vision"][:2], where=towers["vision"][2])
    try:
        model_processor = AutoProcessor.from_pretrained(processor)
    except (OSError, ValueError) as error:
        raise OfficialCheckpointError(
            f"Cannot load the processor {str(processor)!r} ({type(error).__name__}). The official checkpoints use "
            f"OpenAI CLIP's tokenizer and image preprocessing: pass --processor openai/clip-vit-base-patch32 on a "
            f"machine with network access, or a local folder holding that processor."
        ) from None
    tokenizer = model_processor.tokenizer
    crop = getattr(model_processor.image_processor, "crop_size", None) or {}
    crop_size = crop.get("height") if isinstance(crop, Mapping) else None
    if crop_size is not None and crop_size != vision.architecture["image_size"]:
        raise OfficialCheckpointError(
            f"The processor {processor} makes {crop_size} px images but the vision tower expects "
            f"{vision.architecture['image_size']} px; pass the matching --processor."
        )
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    config, weights = official_to_tripletclip(text, vision, special, loss_type, logit_scale)
    config = align_text_config(config, tokenizer)
    model = TripletCLIPModel(config)
    model.load_state_dict(weights, strict=True)
    model.eval()

    with atomic.atomic_path(out, folder=True) as tmp:
        save_checkpoint(model, tmp, processor=model_processor, checkpoint_format=checkpoint_format)
        render_model_card(
            base_model=str(source) if not Path(source).exists() else None,
            license="other",
            repo_id=str(out),
            model_config=config,
            checkpoint_format=checkpoint_format,
            model_name=f"{Path(str(source).rstrip('/')).name} (converted to TripletCLIP)",
            tags=["official-checkpoint"],
            notes=conversion_notes(source, text, vision, logit_scale, loss_type),
        ).save(tmp / "README.md")
    return out, text, vision


__all__ = ["DEFAULT_PROCESSOR", "OfficialCheckpointError", "convert_clip", "convert_official", "load_official_towers",
           "official_loss_type"]
