"""PyTorch TripletCLIP model: CLIP trained with synthetic hard negatives in both modalities.

`TripletCLIPModel` is a `transformers.CLIPModel` with the same weights and the same public API. Without negatives
it *is* CLIP (same embeddings, logits and loss). With negative captions and/or negative images it encodes
``[x; x']`` in one vision pass and ``[y; y']`` in one text pass and computes the objective named by
``config.loss_type`` (see ``losses.py``).

This module travels as remote code with every checkpoint saved in the ``remote_code`` form, together with ``configuration_tripletclip.py`` and
``losses.py``: it imports only torch, transformers and those two, and does no file-system or Hub I/O of its own
(loading policy, such as "safetensors only" and the checks of a local folder, lives in ``modeling_tripletclip.loading``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import CLIPOutput, _get_vector_norm
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, logging
from transformers.utils.generic import can_return_tuple

from .configuration_tripletclip import TripletCLIPConfig, from_clip_dict
from .losses import Gather, check_loss_type, compute_loss, objective

logger = logging.get_logger(__name__)


@dataclass
class TripletCLIPOutput(CLIPOutput):
    r"""
    Output of [`TripletCLIPModel`]. The fields of [`CLIPOutput`] describe the *real* pairs only, exactly as
    `CLIPModel` would return them; the negatives and the loss's parts are added.

    Args:
        loss (`torch.Tensor` of shape `()`, *optional*, returned when `return_loss=True`):
            The objective named by `config.loss_type` (or the `loss_type` argument).
        logits_per_image (`torch.Tensor` of shape `(B, B)`):
            `exp(logit_scale) * image_embeds @ text_embeds.T`, real images against real captions.
        logits_per_text (`torch.Tensor` of shape `(B, B)`):
            The transpose of `logits_per_image`.
        text_embeds (`torch.Tensor` of shape `(B, projection_dim)`):
            L2-normalised embeddings of the real captions.
        image_embeds (`torch.Tensor` of shape `(B, projection_dim)`):
            L2-normalised embeddings of the real images.
        negative_text_embeds (`torch.Tensor` of shape `(B, projection_dim)`, *optional*):
            L2-normalised embeddings of the negative captions, when given.
        negative_image_embeds (`torch.Tensor` of shape `(B, projection_dim)`, *optional*):
            L2-normalised embeddings of the negative images, when given.
        loss_parts (`dict[str, torch.Tensor]`, *optional*):
            Named scalar terms of the loss for logging, e.g. `real_anchor` and `negative_anchor` for TripletCLIP,
            `image_to_text` and `text_to_image` for CLIP and NegCLIP.
        text_model_output, vision_model_output (`BaseModelOutputWithPooling`):
            The encoders' outputs for the concatenated batches (`[y; y']` and `[x; x']` when negatives are given).
    """

    negative_text_embeds: torch.Tensor | None = None
    negative_image_embeds: torch.Tensor | None = None
    loss_parts: dict[str, torch.Tensor] | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        """`CLIPOutput`'s tuple (what `return_dict=False` returns), then the negatives' embeddings when there are
        any. `loss_parts`, a dictionary for logging, is left out, so code that unpacks CLIP's tuple works unchanged."""
        return tuple(
            self[key].to_tuple() if key in ("text_model_output", "vision_model_output") else self[key]
            for key in self.keys() if key != "loss_parts"
        )


class TripletCLIPModel(CLIPModel):
    r"""
    CLIP with the TripletCLIP objective (and its baselines) built in.

    The architecture, weights and encoding API are `CLIPModel`'s: `get_text_features` and `get_image_features` return
    the encoders' outputs with the *projected* (not normalised) embedding in `.pooler_output`. `forward` adds the
    negative inputs of a TripletData batch.

    Example:

    ```python
    >>> import torch
    >>> from transformers import AutoModel, AutoProcessor
    >>> model = AutoModel.from_pretrained("path/to/tripletclip")  # a TripletCLIPModel
    >>> processor = AutoProcessor.from_pretrained("path/to/tripletclip")
    >>> inputs = processor(text=["a red cube left of a blue ball", "a blue cube left of a red ball"],
    ...                    images=image, return_tensors="pt", padding=True)
    >>> with torch.inference_mode():
    ...     probs = model(**inputs).logits_per_image.softmax(dim=-1)
    ```
    """

    config_class = TripletCLIPConfig
    config: TripletCLIPConfig

    def __init__(self, config: TripletCLIPConfig):
        if not isinstance(config, TripletCLIPConfig):
            config = _to_tripletclip_config(config)
        super().__init__(config)

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_clip(
        cls, clip: str | os.PathLike | CLIPModel, loss_type: str = "tripletclip", **config_overrides: Any
    ) -> "TripletCLIPModel":
        """Make a TripletCLIP model from any CLIP checkpoint (a Hub id, a local folder or a loaded `CLIPModel`),
        with bit-identical weights. `loss_type` and any other `TripletCLIPConfig` field can be set here.

        ```python
        >>> model = TripletCLIPModel.from_clip("openai/clip-vit-base-patch32", loss_type="tripletclip")
        ```
        """
        if isinstance(clip, CLIPModel):
            config = _to_tripletclip_config(clip.config, loss_type=loss_type, **config_overrides)
            model = cls(config)
            model.load_state_dict(clip.state_dict(), strict=True)
            return model.to(device=clip.device, dtype=clip.dtype)
        config = _to_tripletclip_config(CLIPConfig.from_pretrained(clip), loss_type=loss_type, **config_overrides)
        return cls.from_pretrained(clip, config=config, use_safetensors=True)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As `PreTrainedModel.save_pretrained`; the checkpoint also names this class for
        `AutoModelForZeroShotImageClassification`, so the zero-shot pipeline can load it as remote code."""
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoModelForZeroShotImageClassification"] = f"{self.__class__.__module__.split('.')[-1]}.{self.__class__.__name__}"
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ------------------------------------------------------------------ forward

    def _normalised_text_embeds(self, input_ids, attention_mask, position_ids, **kwargs):
        outputs: BaseModelOutputWithPooling = self.get_text_features(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )
        embeds = outputs.pooler_output
        return embeds / _get_vector_norm(embeds), outputs

    def _normalised_image_embeds(self, pixel_values, interpolate_pos_encoding, **kwargs):
        outputs: BaseModelOutputWithPooling = self.get_image_features(
            pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs
        )
        embeds = outputs.pooler_output
        return embeds / _get_vector_norm(embeds), outputs

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        *,
        negative_input_ids: torch.LongTensor | None = None,
        negative_pixel_values: torch.FloatTensor | None = None,
        negative_attention_mask: torch.Tensor | None = None,
        loss_type: str | None = None,
        gather: Gather | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TripletCLIPOutput:
        r"""
        The positional arguments are `CLIPModel.forward`'s, in its order; the negatives and the objective are
        keyword-only.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids of the real captions.
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): the real images.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): mask of `input_ids`.
            negative_input_ids (`torch.LongTensor` of shape `(B, L')`, *optional*): the negative captions, row
                `i` the negative of caption `i`. `L'` may differ from `L`.
            negative_pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`, *optional*): the negative images.
            negative_attention_mask (`torch.Tensor` of shape `(B, L')`, *optional*): mask of `negative_input_ids`.
            return_loss (`bool`, *optional*): compute the loss.
            interpolate_pos_encoding (`bool`, defaults to `False`): as in `CLIPModel`, interpolate the vision
                position embeddings for images of another size than `image_size`.
            loss_type (`str`, *optional*): override `config.loss_type` for this call.
            gather (`losses.Gather`, *optional*): the processes this batch is split over, for a loss over the whole
                gathered batch (a trainer passes it; see `losses.compute_loss`). Without it the loss is computed on
                these rows alone, whatever process group exists.

        Without negatives the model is exactly `CLIPModel` (any number of captions against any number of images, as
        the zero-shot pipeline uses it), and the loss is CLIP's. With negatives, the inputs the
        objective needs must all be given (`negclip`: negative captions; `negative_images`: negative images;
        `tripletclip`, `clip_hn`: both), with the positives' batch size.
        """
        if input_ids is None or pixel_values is None:
            raise ValueError(
                "TripletCLIPModel.forward needs both `input_ids` (B, L) and `pixel_values` (B, C, H, W); to encode one "
                "modality alone use `get_text_features` or `get_image_features`."
            )
        loss_type = check_loss_type(loss_type or self.config.loss_type)
        if not interpolate_pos_encoding:
            self._check_pixel_values("pixel_values", pixel_values)
        has_negatives = negative_input_ids is not None or negative_pixel_values is not None
        if has_negatives:
            self._check_negatives(
                loss_type, input_ids, pixel_values, negative_input_ids, negative_pixel_values, negative_attention_mask
            )
        elif return_loss and loss_type != "clip":
            if not torch.compiler.is_compiling():  # a log call would break a full graph
                logger.warning_once(
                    f"TripletCLIPModel was called with return_loss=True but no negatives: computing the plain CLIP "
                    f"loss instead of {loss_type!r}. Pass negative_input_ids / negative_pixel_values to train with it."
                )
            loss_type = "clip"
        image_batch, text_batch = pixel_values.shape[0], input_ids.shape[0]

        # One vision pass over [x; x'] and one text pass over [y; y'].
        if negative_pixel_values is not None:
            pixel_values = torch.cat([pixel_values, negative_pixel_values.to(pixel_values.dtype)])
        all_image_embeds, vision_outputs = self._normalised_image_embeds(
            pixel_values, interpolate_pos_encoding, **kwargs
        )
        if negative_input_ids is not None:
            input_ids, attention_mask = _concat_token_batches(
                input_ids, attention_mask, negative_input_ids, negative_attention_mask, self.config.text_config
            )
            position_ids = None
        all_text_embeds, text_outputs = self._normalised_text_embeds(input_ids, attention_mask, position_ids, **kwargs)

        image_embeds, negative_image_embeds = all_image_embeds[:image_batch], _rows_after(all_image_embeds, image_batch)
        text_embeds, negative_text_embeds = all_text_embeds[:text_batch], _rows_after(all_text_embeds, text_batch)

        # Exactly CLIPModel's arithmetic (product first, then the scale), so the logits are bit-identical to CLIP's.
        logit_scale = self.logit_scale.exp()
        logits_per_text = torch.matmul(text_embeds, image_embeds.t().to(text_embeds.device))
        logits_per_text = logits_per_text * logit_scale.to(text_embeds.device)
        logits_per_image = logits_per_text.t()

        loss, loss_parts = None, None
        if return_loss:
            parts = compute_loss(
                loss_type,
                logit_scale,
                image_embeds,
                text_embeds,
                negative_image_embeds,
                negative_text_embeds,
                gather=gather,
                local_loss=self.config.local_loss,
                cyclip_in_modal_weight=self.config.cyclip_in_modal_weight,
                cyclip_cross_modal_weight=self.config.cyclip_cross_modal_weight,
            )
            loss = parts.pop("loss")
            loss_parts = parts

        return TripletCLIPOutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
            negative_text_embeds=negative_text_embeds,
            negative_image_embeds=negative_image_embeds,
            loss_parts=loss_parts,
        )

    # ------------------------------------------------------------------ input checks

    def _check_pixel_values(self, name: str, pixel_values: torch.Tensor) -> None:
        vision = self.config.vision_config
        size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
        expected = (vision.num_channels, size, size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"`{name}` has shape {tuple(pixel_values.shape)}, expected (batch, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) for this model's image_size={size}. Prepare images with the model's processor "
                f"(AutoProcessor.from_pretrained(<checkpoint>)), which resizes and crops them to that size."
            )

    def _check_negatives(
        self, loss_type, input_ids, pixel_values, negative_input_ids, negative_pixel_values, negative_attention_mask
    ) -> None:
        needs = objective(loss_type)
        needs_captions, needs_images = needs.needs_negative_captions, needs.needs_negative_images
        batch = pixel_values.shape[0]
        if input_ids.shape[0] != batch:
            raise ValueError(
                f"`input_ids` has batch size {input_ids.shape[0]} but `pixel_values` has {batch}: one caption per image."
            )
        if needs_captions and negative_input_ids is None:
            raise ValueError(
                f"loss_type={loss_type!r} needs negative captions: pass `negative_input_ids` of shape ({batch}, L), "
                f"one negative caption per real caption."
            )
        if needs_images and negative_pixel_values is None:
            raise ValueError(
                f"loss_type={loss_type!r} needs negative images: pass `negative_pixel_values` of shape "
                f"{(batch, *pixel_values.shape[1:])}, one negative image per real image."
            )
        if negative_input_ids is not None:
            if negative_input_ids.dim() != 2 or negative_input_ids.shape[0] != batch:
                raise ValueError(
                    f"`negative_input_ids` has shape {tuple(negative_input_ids.shape)}, expected ({batch}, L): the "
                    f"positives' batch size ({batch}), one negative caption per real caption."
                )
            if negative_attention_mask is not None and negative_attention_mask.shape != negative_input_ids.shape:
                raise ValueError(
                    f"`negative_attention_mask` has shape {tuple(negative_attention_mask.shape)}, expected "
                    f"{tuple(negative_input_ids.shape)} (the shape of `negative_input_ids`)."
                )
        if negative_pixel_values is not None:
            if tuple(negative_pixel_values.shape) != tuple(pixel_values.shape):
                raise ValueError(
                    f"`negative_pixel_values` has shape {tuple(negative_pixel_values.shape)}, expected "
                    f"{tuple(pixel_values.shape)} (the shape of `pixel_values`): one negative image per real image, "
                    f"prepared by the same processor."
                )


def _rows_after(tensor: torch.Tensor, batch: int) -> torch.Tensor | None:
    return tensor[batch:] if tensor.shape[0] > batch else None


def _concat_token_batches(input_ids, attention_mask, negative_input_ids, negative_attention_mask, text_config):
    """Stack real and negative captions into one `(2B, max(L, L'))` batch, right-padding the shorter one.

    CLIP's text encoder is causal and pools at the first end-of-text token, so padding appended after a caption
    changes nothing in its embedding.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if negative_attention_mask is None:
        negative_attention_mask = torch.ones_like(negative_input_ids)
    length = max(input_ids.shape[1], negative_input_ids.shape[1])
    pad_id = text_config.pad_token_id if text_config.pad_token_id is not None else 0

    def pad(ids, mask):
        extra = length - ids.shape[1]
        if extra == 0:
            return ids, mask
        return F.pad(ids, (0, extra), value=pad_id), F.pad(mask, (0, extra), value=0)

    ids_a, mask_a = pad(input_ids, attention_mask)
    ids_b, mask_b = pad(negative_input_ids.to(input_ids.device), negative_attention_mask.to(attention_mask.device))
    return torch.cat([ids_a, ids_b]), torch.cat([mask_a, mask_b.to(mask_a.dtype)])


def _to_tripletclip_config(config: CLIPConfig, **overrides: Any) -> TripletCLIPConfig:
    """A `TripletCLIPConfig` for any `CLIPConfig` (a published checkpoint's settings restored), the whole
    configuration kept, the attention implementation included."""
    values = from_clip_dict(config.to_dict())
    values.update(overrides)
    converted = TripletCLIPConfig(**values)
    converted._attn_implementation = config._attn_implementation
    return converted


__all__ = ["TripletCLIPModel", "TripletCLIPOutput"]
