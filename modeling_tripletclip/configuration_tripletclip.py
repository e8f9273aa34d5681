"""TripletCLIP model configuration.

A TripletCLIP checkpoint is a CLIP checkpoint whose configuration also names its training objective. Everything
architectural comes from :class:`transformers.CLIPConfig`; this file adds only the objective, so a model can be
rebuilt, and its loss recomputed, from the configuration alone.

The objectives (``loss_type``) are those of ``losses.OBJECTIVES``; this is where a name is validated.

A checkpoint is published as a plain CLIP checkpoint (``model_type: "clip"``, loadable by every CLIP client with no
remote code) that keeps these settings under one key of its ``config.json`` (:data:`CLIP_METADATA_KEY`);
:meth:`TripletCLIPConfig.to_clip_config` writes that form and ``TripletCLIPConfig.from_pretrained`` reads it back.

This module travels as remote code with checkpoints of the ``remote_code`` form: it imports only transformers and
``losses``.
"""

from typing import Any

from transformers import CLIPConfig
from transformers.configuration_utils import strict

from .losses import LOSS_TYPES, Objective, check_cyclip_weights, objective

#: The key of a plain CLIP ``config.json`` that holds a published checkpoint's TripletCLIP settings.
CLIP_METADATA_KEY = "tripletclip"
#: The settings TripletCLIP adds to `CLIPConfig`.
TRIPLETCLIP_FIELDS = ("loss_type", "local_loss", "cyclip_in_modal_weight", "cyclip_cross_modal_weight")
#: Keys that describe how a configuration was saved, not the model: never carried from one form to the other.
_SAVING_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "_name_or_path")


@strict
class TripletCLIPConfig(CLIPConfig):
    r"""
    Configuration of a [`TripletCLIPModel`]: a [`CLIPConfig`] plus the contrastive objective it trains with.

    Args:
        loss_type (`str`, *optional*, defaults to `"tripletclip"`):
            The objective computed by `forward(..., return_loss=True)`. One of `"clip"`, `"negclip"`,
            `"tripletclip"`, `"clip_hn"`, `"negative_images"` (see `losses.OBJECTIVES`).
        local_loss (`bool`, *optional*, defaults to `False`):
            When the caller splits the batch over processes (`forward(..., gather=Gather(rank, world_size))`),
            compute only this process's rows of the logit matrices against the gathered columns (open_clip's
            `local_loss`). Same gradients, less memory; without it every process computes the full gathered matrices.
        cyclip_in_modal_weight (`float`, *optional*, defaults to `0.0`):
            Weight of CyCLIP's in-modal consistency term (image–image against text–text similarities), added to any
            `loss_type`; 0 leaves it out (as CyCLIP's code does by default); CyCLIP's paper trains with 0.25.
        cyclip_cross_modal_weight (`float`, *optional*, defaults to `0.0`):
            Weight of CyCLIP's cross-modal consistency term (image-to-text against text-to-image similarities).
        text_config, vision_config, projection_dim, logit_scale_init_value:
            As in [`CLIPConfig`].

    Example:

    ```python
    >>> from modeling_tripletclip import TripletCLIPConfig, TripletCLIPModel
    >>> config = TripletCLIPConfig(loss_type="negclip")
    >>> model = TripletCLIPModel(config)  # ViT-B/32-sized, random weights
    ```
    """

    model_type = "tripletclip"

    loss_type: str = "tripletclip"
    local_loss: bool = False
    cyclip_in_modal_weight: float = 0.0
    cyclip_cross_modal_weight: float = 0.0

    def __post_init__(self, **kwargs):
        # Checked before anything else is built, so a typo fails at once with a plain ValueError.
        objective(self.loss_type)
        check_cyclip_weights(self.cyclip_in_modal_weight, self.cyclip_cross_modal_weight)
        # A plain CLIP configuration read into this class (`TripletCLIPModel.from_pretrained("a/clip")`) carries
        # model_type "clip"; the model it builds is a TripletCLIP model, and saves as one.
        kwargs.pop("model_type", None)
        super().__post_init__(**kwargs)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
        """As `PreTrainedConfig.get_config_dict`; a plain CLIP configuration (a published checkpoint, or any CLIP)
        is read as a TripletCLIP one: its :data:`CLIP_METADATA_KEY` settings, if any, become this class's fields."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == "clip":
            config_dict = from_clip_dict(config_dict)
            config_dict["model_type"] = cls.model_type
        return config_dict, kwargs

    def to_clip_config(self) -> CLIPConfig:
        """The same model as a plain `CLIPConfig` (what every CLIP client loads), with this configuration's
        TripletCLIP settings kept under :data:`CLIP_METADATA_KEY` so that `from_pretrained` restores them."""
        values = {key: value for key, value in self.to_dict().items() if key not in _SAVING_KEYS}
        values[CLIP_METADATA_KEY] = {field: values.pop(field) for field in TRIPLETCLIP_FIELDS}
        clip = CLIPConfig(**values)
        clip._attn_implementation = self._attn_implementation
        return clip

    @property
    def objective(self) -> Objective:
        """The objective ``loss_type`` names (`losses.OBJECTIVES`): what it needs, its label."""
        return objective(self.loss_type)


def from_clip_dict(values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a `TripletCLIPConfig` for a CLIP configuration's dictionary: the saving keys
    dropped, the TripletCLIP settings kept under :data:`CLIP_METADATA_KEY` (when present) restored as fields."""
    values = {key: value for key, value in values.items() if key not in _SAVING_KEYS}
    settings = values.pop(CLIP_METADATA_KEY, None) or {}
    values.update({key: value for key, value in settings.items() if key in TRIPLETCLIP_FIELDS})
    return values


__all__ = ["CLIP_METADATA_KEY", "TRIPLETCLIP_FIELDS", "TripletCLIPConfig", "LOSS_TYPES", "from_clip_dict"]
