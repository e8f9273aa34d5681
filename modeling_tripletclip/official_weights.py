"""The official TripletCLIP release's weights, mapped onto one `TripletCLIPModel`: pure tensor mapping, no I/O.

The official checkpoints (``TripletCLIP/{CC3M,CC12M}_{LaCLIP,NegCLIP,NegCLIPPP,TripletCLIP}_ViTB12`` and
``CC3M_LaCLIP_Real_HN_ViTB12``) are two remote-code models in ``text-encoder/`` and ``vision-encoder/``. This module
turns their state dicts and configurations into a `TripletCLIPConfig` and a state dict (:func:`official_to_tripletclip`);
reading the files, downloading and writing the converted checkpoint with its card is ``modeling_tripletclip.hub.convert``
(``tripletclip convert-official``).

The official weights are mapped onto CLIP's by their structure, not by trusting one naming: each tower is recognised
either in transformers' naming (``CLIPTextModelWithProjection`` / ``CLIPVisionModelWithProjection``, possibly under a
prefix such as ``model.``) or in open_clip's (``transformer.resblocks.N.attn.in_proj_weight`` with fused q/k/v,
``ln_1``, ``mlp.c_fc``, ``token_embedding``, ``positional_embedding``, ``ln_final``, ``text_projection`` as a
``(width, dim)`` matrix applied as ``x @ P``; ``visual.conv1``, ``visual.class_embedding``, ``visual.ln_pre``,
``visual.ln_post``, ``visual.proj``). Every tensor of the checkpoint must be used exactly once and fill a CLIP weight
of the right shape; anything else stops the conversion with the list of unmatched and missing names, before anything
is written.

**Logit scale.** The official evaluation (and third-party loaders of these checkpoints) scores with a fixed logit
scale of 100, CLIP's maximum; the converted checkpoint stores ``logit_scale = ln(100)`` so that
``logits_per_image`` and the zero-shot pipeline give the same probabilities. A ``logit_scale`` tensor found in the
checkpoint is recognised and reported, not used (``--logit_scale`` sets another value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dataset_builders.utils.errors import InputError

from .losses import check_loss_type

OFFICIAL_SUBFOLDERS = {"text": "text-encoder", "vision": "vision-encoder"}
OFFICIAL_LOGIT_SCALE = 100.0
# The official repository names say which objective trained them.
_OFFICIAL_OBJECTIVES = (
    (re.compile(r"real_hn", re.I), "clip_hn"),
    (re.compile(r"negclip", re.I), "negclip"),
    (re.compile(r"tripletclip", re.I), "tripletclip"),
    (re.compile(r"laclip", re.I), "clip"),
)


class OfficialCheckpointError(InputError):
    """The official checkpoint could not be mapped onto CLIP unambiguously; the message lists what did not match."""


@dataclass
class TowerMapping:
    """One tower's tensors renamed into `TripletCLIPModel`'s state dict, and what was learned on the way."""

    tower: str  # "text" or "vision"
    naming: str  # "transformers" or "open_clip"
    prefix: str  # the prefix the checkpoint put before the tower's names
    weights: dict[str, Any] = field(default_factory=dict)  # target name -> tensor
    architecture: dict[str, Any] = field(default_factory=dict)  # CLIP(Text|Vision)Config fields
    stored_logit_scale: float | None = None


class _Source:
    """A state dict being consumed: each name may be taken once; what is never taken or absent is reported."""

    def __init__(self, state: Mapping[str, Any], where: str):
        self.state = dict(state)
        self.where = where
        self.used: set[str] = set()
        self.missing: list[str] = []
        self.misshaped: list[str] = []

    def has(self, name: str) -> bool:
        return name in self.state

    def take(self, name: str, shape: tuple[int, ...] | None = None):
        if name not in self.state:
            self.missing.append(name + (f" {tuple(shape)}" if shape else ""))
            return None
        if name in self.used:
            raise OfficialCheckpointError(f"{self.where}: the tensor {name} would be used twice.")
        self.used.add(name)
        tensor = self.state[name]
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            self.misshaped.append(f"{name}: has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        return tensor

    def unused(self) -> list[str]:
        return sorted(name for name in self.state if name not in self.used)

    def check(self) -> None:
        problems = []
        if self.missing:
            problems.append("missing (expected but absent): " + ", ".join(self.missing))
        if self.unused():
            problems.append("unmatched (present but not part of a CLIP tower): " + ", ".join(self.unused()))
        if self.misshaped:
            problems.append("wrong shape: " + "; ".join(self.misshaped))
        if problems:
            raise OfficialCheckpointError(
                f"{self.where} does not map exactly onto a CLIP tower, so nothing was converted.\n  - "
                + "\n  - ".join(problems)
                + "\nIf the release uses a naming this converter does not know, please report these names."
            )


def _find_prefix(state: Mapping[str, Any], suffix: str, where: str, exclude_suffix: str | None = None) -> str | None:
    """The unique prefix ``p`` such that ``p + suffix`` is a key (optionally not ending in ``exclude_suffix``)."""
    prefixes = [
        key[: -len(suffix)]
        for key in state
        if key.endswith(suffix)
        and (key == suffix or key[: -len(suffix)].endswith("."))
        and not (exclude_suffix and key.endswith(exclude_suffix))
    ]
    if len(prefixes) > 1:
        raise OfficialCheckpointError(
            f"{where}: several tensors end with {suffix!r} ({', '.join(p + suffix for p in prefixes)}): cannot tell "
            f"which one is the tower."
        )
    return prefixes[0] if prefixes else None


def _layer_count(state: Mapping[str, Any], block_prefix: str) -> int:
    pattern = re.compile(re.escape(block_prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _config_value(config: Mapping[str, Any], names: tuple[str, ...], tower: str) -> Any:
    """A value from an official config.json whose field names are not fixed: the top level first, then nested dicts
    named after the tower (``text_cfg``, ``vision_config``, ...)."""
    for name in names:
        if name in config and config[name] is not None:
            return config[name]
    words = ("text",) if tower == "text" else ("vision", "visual")
    for key, value in config.items():
        if isinstance(value, Mapping) and any(word in key.lower() for word in words):
            found = _config_value(value, names, tower)
            if found is not None:
                return found
    return None


def _heads(config: Mapping[str, Any], width: int, tower: str, where: str) -> int:
    heads = _config_value(config, ("num_attention_heads", "heads", "n_heads", "num_heads", "attention_heads"), tower)
    if heads is None:  # CLIP's convention: 64-dimensional heads (ViT-B/32: 8 text heads, 12 vision heads)
        heads = width // 64
    heads = int(heads)
    if heads < 1 or width % heads:
        raise OfficialCheckpointError(
            f"{where}: cannot determine the number of attention heads (config says {heads}, width {width}); put "
            f'"num_attention_heads" in its config.json.'
        )
    return heads


def _activation(config: Mapping[str, Any], tower: str) -> str:
    quick = _config_value(config, ("quick_gelu",), tower)
    act = _config_value(config, ("hidden_act", "act_layer", "activation"), tower)
    if quick is False or (isinstance(act, str) and act.lower() == "gelu"):
        return "gelu"
    return "quick_gelu"  # the official towers (and OpenAI's ViT-B/32) use QuickGELU


def _map_blocks(src: _Source, mapped: dict, naming: str, block_prefix: str, target_prefix: str, layers: int,
                width: int, intermediate: int) -> None:
    """The transformer blocks: renamed (transformers' naming) or unfused and renamed (open_clip's)."""
    for i in range(layers):
        s, t = f"{block_prefix}{i}.", f"{target_prefix}{i}."
        if naming == "transformers":
            for part in ("q_proj", "k_proj", "v_proj", "out_proj"):
                mapped[f"{t}self_attn.{part}.weight"] = src.take(f"{s}self_attn.{part}.weight", (width, width))
                mapped[f"{t}self_attn.{part}.bias"] = src.take(f"{s}self_attn.{part}.bias", (width,))
            norms, mlp = (("layer_norm1", "layer_norm1"), ("layer_norm2", "layer_norm2")), ("fc1", "fc2")
        else:
            qkv_w = src.take(f"{s}attn.in_proj_weight", (3 * width, width))
            qkv_b = src.take(f"{s}attn.in_proj_bias", (3 * width,))
            for j, part in enumerate(("q_proj", "k_proj", "v_proj")):  # nn.MultiheadAttention packs q, k, v
                if qkv_w is not None and tuple(qkv_w.shape) == (3 * width, width):
                    mapped[f"{t}self_attn.{part}.weight"] = qkv_w[j * width:(j + 1) * width].clone()
                if qkv_b is not None and tuple(qkv_b.shape) == (3 * width,):
                    mapped[f"{t}self_attn.{part}.bias"] = qkv_b[j * width:(j + 1) * width].clone()
            mapped[f"{t}self_attn.out_proj.weight"] = src.take(f"{s}attn.out_proj.weight", (width, width))
            mapped[f"{t}self_attn.out_proj.bias"] = src.take(f"{s}attn.out_proj.bias", (width,))
            norms, mlp = (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2")), ("mlp.c_fc", "mlp.c_proj")
        for source_norm, target_norm in norms:
            for p in ("weight", "bias"):
                mapped[f"{t}{target_norm}.{p}"] = src.take(f"{s}{source_norm}.{p}", (width,))
        fc1, fc2 = (f"{s}mlp.{n}" for n in mlp) if naming == "transformers" else (f"{s}{n}" for n in mlp)
        mapped[f"{t}mlp.fc1.weight"] = src.take(f"{fc1}.weight", (intermediate, width))
        mapped[f"{t}mlp.fc1.bias"] = src.take(f"{fc1}.bias", (intermediate,))
        mapped[f"{t}mlp.fc2.weight"] = src.take(f"{fc2}.weight", (width, intermediate))
        mapped[f"{t}mlp.fc2.bias"] = src.take(f"{fc2}.bias", (width,))


def _projection(src: _Source, names: tuple[str, str], width: int):
    """A projection stored as ``nn.Linear`` weight ``(dim, width)`` or as open_clip's ``(width, dim)`` matrix P used
    as ``x @ P``; returned as the Linear weight."""
    linear, matrix = names
    if src.has(linear):
        weight = src.take(linear)
        if weight.ndim != 2 or weight.shape[1] != width:
            src.misshaped.append(f"{linear}: has shape {tuple(weight.shape)}, expected (dim, {width})")
        return weight
    if src.has(matrix):
        weight = src.take(matrix)
        if weight.ndim != 2 or weight.shape[0] != width:
            src.misshaped.append(f"{matrix}: has shape {tuple(weight.shape)}, expected ({width}, dim)")
            return weight
        return weight.t().contiguous()
    src.missing.append(f"{linear} or {matrix}")
    return None


def _take_optional_buffers(src: _Source, mapping: TowerMapping, names: tuple[str, ...]) -> None:
    """Consume tensors that are not weights: the temperature (reported) and constant buffers (position ids,
    open_clip's causal mask), checked to be what they must be."""
    import torch

    for name in dict.fromkeys(names):
        if not src.has(name) or name in src.used:
            continue
        tensor = src.take(name)
        short = name.rsplit(".", 1)[-1]
        if short == "logit_scale":
            mapping.stored_logit_scale = float(tensor.float().exp())
        elif short == "position_ids":
            expected = torch.arange(tensor.shape[-1]).expand_as(tensor)
            if not torch.equal(tensor.long(), expected):
                src.misshaped.append(f"{name}: position ids are not 0..n-1")
        elif short == "attn_mask":
            causal = torch.full(tensor.shape, float("-inf")).triu(1)
            if not torch.equal(torch.isinf(tensor), torch.isinf(causal)):
                src.misshaped.append(f"{name}: not a causal mask")


def map_text_tower(state: Mapping[str, Any], config: Mapping[str, Any], where: str = "text-encoder") -> TowerMapping:
    """Rename a text tower's tensors (transformers or open_clip naming) to `TripletCLIPModel`'s ``text_model.*`` and
    ``text_projection.weight``; raises `OfficialCheckpointError` listing unmatched/missing/misshaped tensors."""
    src = _Source(state, where)
    hf_prefix = _find_prefix(state, "embeddings.token_embedding.weight", where)
    oc_prefix = _find_prefix(state, "token_embedding.weight", where, exclude_suffix="embeddings.token_embedding.weight")
    if hf_prefix is None and oc_prefix is None:
        raise OfficialCheckpointError(
            f"{where}: no token embedding found (neither '...embeddings.token_embedding.weight' nor "
            f"'...token_embedding.weight'); this is not a CLIP text tower. Keys start with: "
            f"{', '.join(sorted(state)[:8])}"
        )
    if hf_prefix is not None and oc_prefix is not None:
        raise OfficialCheckpointError(f"{where}: holds two text towers ({hf_prefix!r} and {oc_prefix!r}).")
    naming = "transformers" if hf_prefix is not None else "open_clip"
    prefix = hf_prefix if hf_prefix is not None else oc_prefix
    mapping = TowerMapping("text", naming, prefix)
    mapped = mapping.weights

    token_name = prefix + ("embeddings.token_embedding.weight" if naming == "transformers" else "token_embedding.weight")
    vocab, width = state[token_name].shape
    position_name = prefix + ("embeddings.position_embedding.weight" if naming == "transformers" else "positional_embedding")
    positions = state[position_name].shape[0] if position_name in state else 77
    if naming == "transformers":
        blocks, outer = prefix + "encoder.layers.", prefix[: -len("text_model.")] if prefix.endswith("text_model.") else prefix
        fc1 = f"{blocks}0.mlp.fc1.weight"
    else:
        blocks, outer = prefix + "transformer.resblocks.", prefix
        fc1 = f"{blocks}0.mlp.c_fc.weight"
    layers = _layer_count(state, blocks)
    intermediate = state[fc1].shape[0] if fc1 in state else 4 * width

    mapped["text_model.embeddings.token_embedding.weight"] = src.take(token_name)
    mapped["text_model.embeddings.position_embedding.weight"] = src.take(position_name, (positions, width))
    _map_blocks(src, mapped, naming, blocks, "text_model.encoder.layers.", layers, width, intermediate)
    final = prefix + ("final_layer_norm" if naming == "transformers" else "ln_final")
    for p in ("weight", "bias"):
        mapped[f"text_model.final_layer_norm.{p}"] = src.take(f"{final}.{p}", (width,))
    projection = _projection(src, (outer + "text_projection.weight", outer + "text_projection"), width)
    mapped["text_projection.weight"] = projection
    _take_optional_buffers(
        src, mapping, (prefix + "embeddings.position_ids", prefix + "attn_mask", outer + "logit_scale", "logit_scale")
    )
    src.check()
    mapping.architecture = {
        "vocab_size": vocab,
        "hidden_size": width,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": _heads(config, width, "text", where),
        "max_position_embeddings": positions,
        "projection_dim": projection.shape[0],
        "hidden_act": _activation(config, "text"),
    }
    return mapping


def map_vision_tower(state: Mapping[str, Any], config: Mapping[str, Any], where: str = "vision-encoder") -> TowerMapping:
    """Rename a vision tower's tensors (transformers or open_clip naming) to ``vision_model.*`` and
    ``visual_projection.weight``; raises `OfficialCheckpointError` listing unmatched/missing/misshaped tensors."""
    src = _Source(state, where)
    hf_prefix = _find_prefix(state, "embeddings.patch_embedding.weight", where)
    oc_prefix = _find_prefix(state, "conv1.weight", where)
    if hf_prefix is None and oc_prefix is None:
        raise OfficialCheckpointError(
            f"{where}: no patch embedding found (neither '...embeddings.patch_embedding.weight' nor "
            f"'...conv1.weight'); this is not a CLIP ViT tower. Keys start with: {', '.join(sorted(state)[:8])}"
        )
    if hf_prefix is not None and oc_prefix is not None:
        raise OfficialCheckpointError(f"{where}: holds two vision towers ({hf_prefix!r} and {oc_prefix!r}).")
    naming = "transformers" if hf_prefix is not None else "open_clip"
    prefix = hf_prefix if hf_prefix is not None else oc_prefix
    mapping = TowerMapping("vision", naming, prefix)
    mapped = mapping.weights

    if naming == "transformers":
        names = {"patch": "embeddings.patch_embedding.weight", "class": "embeddings.class_embedding",
                 "position": "embeddings.position_embedding.weight", "pre": "pre_layrnorm", "post": "post_layernorm"}
        blocks = prefix + "encoder.layers."
        outer = prefix[: -len("vision_model.")] if prefix.endswith("vision_model.") else prefix
        projection_names = (outer + "visual_projection.weight", outer + "visual_projection")
        fc1 = f"{blocks}0.mlp.fc1.weight"
    else:
        names = {"patch": "conv1.weight", "class": "class_embedding", "position": "positional_embedding",
                 "pre": "ln_pre", "post": "ln_post"}
        blocks, outer = prefix + "transformer.resblocks.", prefix
        projection_names = (prefix + "proj.weight", prefix + "proj")
        fc1 = f"{blocks}0.mlp.c_fc.weight"
    patch = state[prefix + names["patch"]]
    if patch.ndim != 4 or patch.shape[2] != patch.shape[3]:
        raise OfficialCheckpointError(f"{where}: {prefix + names['patch']} has shape {tuple(patch.shape)}, expected "
                                      f"(width, channels, patch, patch).")
    width, channels, patch_size = patch.shape[0], patch.shape[1], patch.shape[2]
    position_name = prefix + names["position"]
    num_positions = state[position_name].shape[0] if position_name in state else 0
    grid = math.isqrt(max(num_positions - 1, 0))
    if grid * grid != num_positions - 1:
        raise OfficialCheckpointError(
            f"{where}: {position_name} holds {num_positions} positions, not 1 + a square grid of patches."
        )
    layers = _layer_count(state, blocks)
    intermediate = state[fc1].shape[0] if fc1 in state else 4 * width

    mapped["vision_model.embeddings.patch_embedding.weight"] = src.take(prefix + names["patch"])
    mapped["vision_model.embeddings.class_embedding"] = src.take(prefix + names["class"], (width,))
    mapped["vision_model.embeddings.position_embedding.weight"] = src.take(position_name, (num_positions, width))
    for source_norm, target_norm in ((names["pre"], "pre_layrnorm"), (names["post"], "post_layernorm")):
        for p in ("weight", "bias"):
            mapped[f"vision_model.{target_norm}.{p}"] = src.take(f"{prefix}{source_norm}.{p}", (width,))
    _map_blocks(src, mapped, naming, blocks, "vision_model.encoder.layers.", layers, width, intermediate)
    projection = _projection(src, projection_names, width)
    mapped["visual_projection.weight"] = projection
    _take_optional_buffers(src, mapping, (prefix + "embeddings.position_ids", outer + "logit_scale", "logit_scale"))
    src.check()
    mapping.architecture = {
        "hidden_size": width,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": _heads(config, width, "vision", where),
        "image_size": grid * patch_size,
        "patch_size": patch_size,
        "num_channels": channels,
        "projection_dim": projection.shape[0],
        "hidden_act": _activation(config, "vision"),
    }
    return mapping


def official_loss_type(source: str) -> str:
    """The objective an official checkpoint was trained with, read from its name (default ``"tripletclip"``)."""
    name = str(source).rstrip("/").rsplit("/", 1)[-1]
    for pattern, loss_type in _OFFICIAL_OBJECTIVES:
        if pattern.search(name):
            return loss_type
    return "tripletclip"


def official_to_tripletclip(
    text: TowerMapping,
    vision: TowerMapping,
    special_tokens: Mapping[str, int | None],
    loss_type: str,
    logit_scale: float = OFFICIAL_LOGIT_SCALE,
):
    """The `TripletCLIPConfig` and state dict of one checkpoint made of two mapped towers.

    Args:
        text, vision: the towers as :func:`map_text_tower` / :func:`map_vision_tower` recognised them.
        special_tokens: the tokenizer's ``bos_token_id``, ``eos_token_id``, ``pad_token_id``.
        loss_type: the objective recorded in the config.
        logit_scale: the fixed temperature of the official evaluation, 100; stored as ``ln(logit_scale)``.

    Raises:
        OfficialCheckpointError: the towers do not share an embedding space, or the weights do not fit exactly.
    """
    import torch

    from .configuration_tripletclip import TripletCLIPConfig
    from .modeling_tripletclip import TripletCLIPModel

    check_loss_type(loss_type)
    if logit_scale <= 0:
        raise OfficialCheckpointError(f"The logit scale must be positive (the official value is 100), got {logit_scale}.")
    if text.architecture["projection_dim"] != vision.architecture["projection_dim"]:
        raise OfficialCheckpointError(
            f"The text tower projects to {text.architecture['projection_dim']} dimensions and the vision tower to "
            f"{vision.architecture['projection_dim']}: they do not share an embedding space."
        )
    config = TripletCLIPConfig(
        text_config={**text.architecture, **special_tokens},
        vision_config=vision.architecture,
        projection_dim=text.architecture["projection_dim"],
        logit_scale_init_value=math.log(logit_scale),
        loss_type=loss_type,
    )
    weights = {**text.weights, **vision.weights, "logit_scale": torch.tensor(math.log(logit_scale))}
    with torch.device("meta"):
        expected = TripletCLIPModel(config).state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [f"{k}: {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
             if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:  # the mapping guarantees this; a last check before anything is written
        raise OfficialCheckpointError(f"Converted weights do not fit TripletCLIP: missing {missing}, extra {extra}, "
                                      f"wrong shapes {wrong}.")
    return config, weights


def conversion_notes(source, text: TowerMapping, vision: TowerMapping, logit_scale: float, loss_type: str) -> str:
    lines = [
        f"Converted with `tripletclip convert-official --model_name_or_path {source}` from the official release's two remote-code towers "
        f"(`text-encoder/`, `vision-encoder/`) into one TripletCLIP checkpoint; every tensor was used exactly once.",
        f"- text tower: {text.naming} naming (prefix `{text.prefix}`), {text.architecture['num_hidden_layers']} "
        f"layers of width {text.architecture['hidden_size']}, {text.architecture['num_attention_heads']} heads, "
        f"{text.architecture['max_position_embeddings']} positions, {text.architecture['hidden_act']}",
        f"- vision tower: {vision.naming} naming (prefix `{vision.prefix}`), ViT {vision.architecture['image_size']} px, "
        f"patch {vision.architecture['patch_size']}, {vision.architecture['num_hidden_layers']} layers of width "
        f"{vision.architecture['hidden_size']}",
        f"- logit scale: fixed at {logit_scale:g} (`logit_scale = ln {logit_scale:g}`), as the official evaluation "
        f"scores; it changes the probabilities, not the ranking of captions.",
        f"- objective recorded in the config: `{loss_type}` (from the repository name; it only matters for further "
        f"training).",
        "- License: see the source repository; the official checkpoints were released without a model card.",
    ]
    for mapping in (text, vision):
        if mapping.stored_logit_scale is not None:
            lines.append(f"- the {mapping.tower} checkpoint stores a logit scale of {mapping.stored_logit_scale:.2f}; "
                         f"not used (see above)")
    return "\n".join(lines)


__all__ = [
    "OFFICIAL_LOGIT_SCALE",
    "OFFICIAL_SUBFOLDERS",
    "OfficialCheckpointError",
    "TowerMapping",
    "conversion_notes",
    "map_text_tower",
    "map_vision_tower",
    "official_loss_type",
    "official_to_tripletclip",
]
