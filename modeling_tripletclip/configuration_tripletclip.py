"""TripletCLIP model configuration.

A TripletCLIP checkpoint is a CLIP checkpoint whose configuration also names its training objective. Everything
architectural comes from :class:`transformers.CLIPConfig`; this file adds only the objective, so a model can be
rebuilt, and its loss recomputed, from the configuration alone.

This module travels with every saved checkpoint as remote code: it imports nothing from our package.
"""

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig

LOSS_TYPES = ("clip", "negclip", "tripletclip", "clip_hn", "negative_images")
"""The training objectives a :class:`TripletCLIPConfig` may name.

- ``"clip"``: the plain CLIP loss on real pairs (LaCLIP when the captions are LLM rewrites).
- ``"negclip"``: NegCLIP; negative captions join the image-to-text softmax.
- ``"tripletclip"``: the paper's loss, NegCLIP with real images as anchors plus NegCLIP with negative images as
  anchors (negative caption as positive, real captions as hard negatives).
- ``"clip_hn"``: LaCLIP+HN; the negative pairs are added to the batch as ordinary extra pairs (CLIP over 2B pairs).
- ``"negative_images"``: the "negative images only" ablation, NegCLIP's mirror image: negative images join the
  text-to-image softmax as hard negatives of the real captions; negative captions are not used.
"""

# The negative inputs each objective needs: (negative captions, negative images).
LOSS_NEEDS_NEGATIVES = {
    "clip": (False, False),
    "negclip": (True, False),
    "tripletclip": (True, True),
    "clip_hn": (True, True),
    "negative_images": (False, True),
}


@strict
class TripletCLIPConfig(CLIPConfig):
    r"""
    Configuration of a [`TripletCLIPModel`]: a [`CLIPConfig`] plus the contrastive objective it trains with.

    Args:
        loss_type (`str`, *optional*, defaults to `"tripletclip"`):
            The objective computed by `forward(..., return_loss=True)`. One of `"clip"`, `"negclip"`,
            `"tripletclip"`, `"clip_hn"`, `"negative_images"` (see `LOSS_TYPES`).
        local_loss (`bool`, *optional*, defaults to `False`):
            With several processes, compute only this process's rows of the logit matrices against the gathered
            columns (open_clip's `local_loss`). Same loss value in expectation and same gradients, less memory;
            without it every process computes the full gathered matrices.
        gather_with_grad (`bool`, *optional*, defaults to `True`):
            All-gather embeddings across processes with gradient, so that N processes of batch B compute the
            loss and gradients of one process with batch N*B. Only ever turn off to reproduce older code.
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

    def __post_init__(self, **kwargs):
        # Checked before anything else is built, so a typo fails at once with a plain ValueError.
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(
                f"Unknown loss_type {self.loss_type!r}. Choose one of: {', '.join(repr(t) for t in LOSS_TYPES)}."
            )
        super().__post_init__(**kwargs)

    @property
    def needs_negative_captions(self) -> bool:
        return LOSS_NEEDS_NEGATIVES[self.loss_type][0]

    @property
    def needs_negative_images(self) -> bool:
        return LOSS_NEEDS_NEGATIVES[self.loss_type][1]


__all__ = ["TripletCLIPConfig", "LOSS_TYPES", "LOSS_NEEDS_NEGATIVES"]
