"""Loading and saving checkpoints for every command: the policy the remote-code model files leave out.

- **Two saved forms** (:data:`CHECKPOINT_FORMATS`, :func:`save_checkpoint`): ``clip``, the default, is a plain
  ``CLIPModel`` checkpoint (``model_type: "clip"``, no code) that every CLIP client loads with no flag, on
  transformers 4.x and 5.x, with the TripletCLIP settings kept in ``config.json`` so that
  ``TripletCLIPModel.from_pretrained`` restores them; ``remote_code`` is a ``tripletclip`` checkpoint that carries
  the model's code (``trust_remote_code=True`` without this package; transformers 5 only).

- **Safetensors only**: weights are never unpickled (``use_safetensors=True``); a folder with only pickled weights is
  refused with the one-line fix.
- **Checked before the weights**: a local folder without ``config.json``, a checkpoint of another kind (``bert``...),
  or a model without a text and a vision tower is refused from its configuration, before anything large is read.
- **One device and dtype policy** (`dataset_builders.utils.devices`).

    model = load_tripletclip("outputs/tripletclip-world")                   # training, conversion, push
    model, processor = load_model_and_processor("openai/clip-vit-base-patch32", device="cpu")   # any CLIP-like model

TripletCLIP checkpoints load with this package's classes (importing the package registers them); plain ``CLIPModel``
checkpoints load as they are (as baselines), or as a `TripletCLIPModel` with identical weights (:func:`load_tripletclip`).
"""

from __future__ import annotations

import json
import os
from dataclasses import field
from pathlib import Path
from typing import Any

from dataset_builders.utils.devices import resolve_device, resolve_dtype
from dataset_builders.utils.errors import InputError
from dataset_builders.utils.locations import is_local

SUPPORTED_MODEL_TYPES = ("tripletclip", "clip")
#: The forms a TripletCLIP checkpoint is saved in; the first is the default.
CHECKPOINT_FORMATS = ("clip", "remote_code")


def checkpoint_format_option():
    """The ``--checkpoint_format`` field of every command that writes a checkpoint (one help text, one choice list)."""
    return field(default=CHECKPOINT_FORMATS[0], metadata={
        "help": "'clip': a plain CLIPModel checkpoint every CLIP client loads with no flag (the TripletCLIP settings "
                "kept in config.json); 'remote_code': model_type 'tripletclip' with its code, for "
                "trust_remote_code=True (transformers 5)", "choices": CHECKPOINT_FORMATS})


def check_checkpoint_format(checkpoint_format: str) -> str:
    """Return ``checkpoint_format`` if it is one of :data:`CHECKPOINT_FORMATS`, else raise `InputError`."""
    if checkpoint_format not in CHECKPOINT_FORMATS:
        raise InputError(
            f"--checkpoint_format {checkpoint_format!r} is not a checkpoint form; choose 'clip' (a plain CLIPModel "
            f"checkpoint that every CLIP client loads, the default) or 'remote_code' (model_type 'tripletclip' with "
            f"its code, for trust_remote_code=True)."
        )
    return checkpoint_format


def save_checkpoint(model, folder: str | os.PathLike, *, processor=None, checkpoint_format: str = "clip") -> Path:
    """Save a `TripletCLIPModel` (and its processor) in ``folder`` in one of :data:`CHECKPOINT_FORMATS`.

    ``clip`` writes the same safetensors tensors under a plain ``CLIPConfig`` (architectures ``CLIPModel``, no
    ``auto_map``, no code files), the TripletCLIP settings under ``config.json``'s ``"tripletclip"`` key;
    ``remote_code`` writes the model as it is, with ``auto_map`` and the three model files.
    """
    import torch
    from transformers import CLIPModel

    folder = Path(folder)
    if check_checkpoint_format(checkpoint_format) == "remote_code":
        model.save_pretrained(folder)
    else:
        with torch.device("meta"):
            clip = CLIPModel(model.config.to_clip_config())
        clip.load_state_dict(model.state_dict(), strict=True, assign=True)  # shares the tensors: nothing is copied
        clip.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
        if checkpoint_format == "clip":
            _portable_tokenizer_config(folder / "tokenizer_config.json")
    return folder


def _portable_tokenizer_config(path: Path) -> None:
    """Leave out of ``extra_special_tokens`` the tokens that are already named special tokens (``unk_token``...).

    transformers 5 writes that field as a list, which transformers 4 cannot read (it expects a mapping); for CLIP's
    tokenizers it only repeats the named ones, so without the repetition both versions load the same tokenizer."""
    from dataset_builders.utils import atomic

    if not path.is_file():
        return
    values = json.loads(path.read_text(encoding="utf-8"))
    extra = values.get("extra_special_tokens")
    if not isinstance(extra, list):
        return
    named = {values.get(key) for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
    remaining = [token for token in extra if token not in named]
    if remaining:
        values["extra_special_tokens"] = remaining
    else:
        values.pop("extra_special_tokens")
    atomic.write_text(path, json.dumps(values, indent=2, ensure_ascii=False) + "\n")


def checkpoint_format_of(folder: str | os.PathLike) -> str | None:
    """The form of a local checkpoint folder (``clip`` or ``remote_code``), None when it is neither."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return None
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    return {"clip": "clip", "tripletclip": "remote_code"}.get(model_type)


def check_checkpoint_folder(path: str | os.PathLike, subfolder: str = "") -> str | None:
    """For a local folder, fail early and clearly when it is not a CLIP or TripletCLIP checkpoint with safetensors
    weights; return its model_type (None for a Hub id, which transformers resolves and reports itself)."""
    if not is_local(path):
        return None
    folder = Path(os.fspath(path)).expanduser() / (subfolder or "")
    if not folder.is_dir():
        raise InputError(f"No checkpoint folder {folder}: it does not exist. Give a folder written by `save_pretrained` "
                         f"or a Hub model id.")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError(
            f"{folder} is not a model checkpoint: it has no config.json. Point to a folder written by "
            f"`save_pretrained` (or `tripletclip convert-official` for the official TripletCLIP release)."
        )
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError) as error:
        raise InputError(f"{config_file} is not a valid configuration ({error}).") from error
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"{folder} holds a {model_type!r} checkpoint, not a CLIP or TripletCLIP one (model_type must be one of "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}). Use a CLIP-family checkpoint such as openai/clip-vit-base-patch32."
        )
    if not any(name.endswith(".safetensors") or name == "model.safetensors.index.json" for name in os.listdir(folder)):
        raise InputError(
            f"{folder} has no safetensors weights (model.safetensors). TripletCLIP loads safetensors only; convert "
            f"pickled weights once with `transformers` (`model.save_pretrained(dir, safe_serialization=True)`)."
        )
    return model_type


def load_tripletclip(name_or_path: str | os.PathLike, *, loss_type: str | None = None, **kwargs: Any):
    """A `TripletCLIPModel` from a TripletCLIP or plain CLIP checkpoint (Hub id or folder), safetensors only.

    A CLIP checkpoint gets the TripletCLIP configuration with the same weights; ``loss_type`` sets the objective.
    ``kwargs`` go to ``from_pretrained`` (``dtype``, ``revision``, ...).
    """
    from .modeling_tripletclip import TripletCLIPModel, _to_tripletclip_config

    model_type = check_checkpoint_folder(name_or_path, kwargs.get("subfolder", ""))
    kwargs["use_safetensors"] = True
    if model_type == "clip" and kwargs.get("config") is None:
        from transformers import CLIPConfig

        clip_config = CLIPConfig.from_pretrained(name_or_path, subfolder=kwargs.get("subfolder", ""))
        kwargs["config"] = _to_tripletclip_config(clip_config)
    model = TripletCLIPModel.from_pretrained(name_or_path, **kwargs)
    if loss_type is not None:
        model.config.loss_type = loss_type
    return model


def is_clip_like_config(config) -> bool:
    """Whether a model configuration has a text tower and a vision tower (CLIP, TripletCLIP, SigLIP, ...)."""
    return getattr(config, "text_config", None) is not None and getattr(config, "vision_config", None) is not None


def check_clip_like_model(model, name: str = "the model") -> None:
    """Raise `InputError` unless ``model`` has CLIP's encoding API."""
    missing = [m for m in ("get_text_features", "get_image_features") if not callable(getattr(model, m, None))]
    if missing:
        raise InputError(
            f"{name} ({type(model).__name__}) is not a CLIP-like model: it has no {' or '.join(missing)}. "
            "Use a TripletCLIP or CLIP checkpoint (any model with get_text_features and get_image_features); "
            "unwrap a distributed or accelerate-prepared model first (accelerator.unwrap_model(model))."
        )


def check_clip_like_checkpoint(name_or_path: str | os.PathLike, *, trust_remote_code: bool = False):
    """Load only the configuration of a checkpoint and check that it is CLIP-like (cheap: no weights are read).

    Returns:
        The configuration.

    Raises:
        InputError: nothing loadable at ``name_or_path``, or a model without a text and a vision tower.
    """
    from transformers import AutoConfig

    import modeling_tripletclip  # noqa: F401  (registers the tripletclip model type with the Auto classes)

    name = str(name_or_path)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(
            f"Cannot load a model configuration from {name!r} ({error}). Give a folder saved with save_pretrained "
            "(it holds config.json and model.safetensors) or the id of a CLIP-like model on the Hub."
        ) from error
    if not is_clip_like_config(config):
        raise InputError(
            f"{name!r} is a {getattr(config, 'model_type', 'unknown')!r} checkpoint, not a CLIP-like model: it needs "
            "both a text and a vision tower (text_config and vision_config), such as a TripletCLIP or CLIP checkpoint."
        )
    return config


def load_processor(name_or_path: str | os.PathLike, *, trust_remote_code: bool = False):
    """The checkpoint's processor (tokenizer and image processor), or an `InputError` saying how to save one."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(
            f"{str(name_or_path)!r} has no processor (tokenizer and image processor) that AutoProcessor can load "
            f"({type(error).__name__}: {error}). Save the processor next to the model with "
            f"processor.save_pretrained(folder)."
        ) from error


def load_model_and_processor(
    name_or_path: str | os.PathLike,
    *,
    device: str | None = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
):
    """Load a CLIP-like checkpoint and its processor, in eval mode on ``device``.

    Args:
        name_or_path: a folder written by ``save_pretrained`` or a Hub model id.
        device: where to run; defaults to the first accelerator, else CPU.
        dtype: ``float32``, ``bfloat16``, ``float16`` (GPU only), a `torch.dtype`, or None/``auto`` for the
            checkpoint's own.
        trust_remote_code: allow code shipped with the checkpoint to run (needed only for models whose type this
            environment does not know).

    Returns:
        ``(model, processor)``.

    Raises:
        InputError: the path holds no loadable model, the model is not CLIP-like, or the dtype does not fit the device.
    """
    from transformers import AutoModel

    name = str(name_or_path)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    check_clip_like_checkpoint(name, trust_remote_code=trust_remote_code)
    if is_local(name) and (Path(name).expanduser() / "config.json").is_file():
        weights = [p.name for p in Path(name).expanduser().iterdir()]
        if not any(w.endswith(".safetensors") or w == "model.safetensors.index.json" for w in weights):
            raise InputError(f"{name} has no safetensors weights (model.safetensors); only safetensors are loaded.")
    model = AutoModel.from_pretrained(name, trust_remote_code=trust_remote_code, dtype=torch_dtype,
                                      use_safetensors=True)
    check_clip_like_model(model, repr(name))
    processor = load_processor(name, trust_remote_code=trust_remote_code)
    model.to(device).eval()
    return model, processor


__all__ = [
    "CHECKPOINT_FORMATS",
    "checkpoint_format_option",
    "SUPPORTED_MODEL_TYPES",
    "check_checkpoint_format",
    "checkpoint_format_of",
    "save_checkpoint",
    "check_checkpoint_folder",
    "check_clip_like_checkpoint",
    "check_clip_like_model",
    "is_clip_like_config",
    "load_model_and_processor",
    "load_processor",
    "load_tripletclip",
]
