"""TripletCLIP model configuration.

A TripletCLIP checkpoint is a CLIP checkpoint whose configuration also names its training objective. Everything
architectural comes from :class:`transformers.CLIPConfig`; this file adds only the objective, so a model can be
rebuilt, and its loss recomputed, from the configuration alone.

The objectives (``loss_type``) are those of ``losses.OBJECTIVES``; this is where a name is validated.

This module travels with every saved checkpoint as remote code: it imports only transformers and ``losses``.
"""

from transformers import CLIPConfig
from transformers.configuration_utils import strict

from .losses import LOSS_NEEDS_NEGATIVES, LOSS_TYPES, check_loss_type


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
        gather_with_grad (`bool`, *optional*, defaults to `True`):
            All-gather embeddings across processes with gradient, so that N processes of batch B compute the
            loss and gradients of one process with batch N*B. Only ever turn off to reproduce older code.
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
    gather_with_grad: bool = True
    cyclip_in_modal_weight: float = 0.0
    cyclip_cross_modal_weight: float = 0.0

    def __post_init__(self, **kwargs):
        # Checked before anything else is built, so a typo fails at once with a plain ValueError.
        check_loss_type(self.loss_type)
        if self.cyclip_in_modal_weight < 0 or self.cyclip_cross_modal_weight < 0:
            raise ValueError("cyclip_in_modal_weight and cyclip_cross_modal_weight cannot be negative (got "
                             f"{self.cyclip_in_modal_weight}, {self.cyclip_cross_modal_weight}); 0 turns a term off.")
        # A plain CLIP configuration read into this class (`TripletCLIPModel.from_pretrained("a/clip")`) carries
        # model_type "clip"; the model it builds is a TripletCLIP model, and saves as one.
        kwargs.pop("model_type", None)
        super().__post_init__(**kwargs)

    @property
    def needs_negative_captions(self) -> bool:
        return LOSS_NEEDS_NEGATIVES[self.loss_type][0]

    @property
    def needs_negative_images(self) -> bool:
        return LOSS_NEEDS_NEGATIVES[self.loss_type][1]


__all__ = ["TripletCLIPConfig", "LOSS_TYPES", "LOSS_NEEDS_NEGATIVES"]
