"""The contrastive objectives of TripletCLIP and its baselines, as small pure functions.

Notation (a batch of B triplets): ``U``, ``V`` are the L2-normalised embeddings of the images and captions, ``U'``,
``V'`` those of the negative images and negative captions, ``s = exp(logit_scale)``. ``CE(M, t)`` is the mean
cross-entropy of the rows of ``M`` against the target columns ``t``.

- CLIP:        ``L_CLIP(U, V) = ( CE(s·U·Vᵀ, I) + CE(s·V·Uᵀ, I) ) / 2``
- NegCLIP:     ``L_Neg(U, V, V') = ( CE([s·U·Vᵀ | s·U·V'ᵀ], I) + CE(s·V·Uᵀ, I) ) / 2``; the image-to-text softmax
  runs over all 2B captions; negative captions are never anchors.
- TripletCLIP: ``L_TCL = L_Neg(U, V, V') + L_Neg(U', V', V)`` (paper, Eq. 4), both terms every step, unweighted.
- LaCLIP+HN (``clip_hn``): ``L_CLIP([U; U'], [V; V'])``: the negative pairs are ordinary extra pairs.
- Negative images only (``negative_images``): ``( CE(s·U·Vᵀ, I) + CE([s·V·Uᵀ | s·V·U'ᵀ], I) ) / 2``.

Every function takes the rows it *anchors* and, separately, the *candidates* they are scored against, plus the
column index of each anchor's positive (``labels``). On one process the anchors are the candidates and the labels
are ``arange(B)``. Across processes, :func:`compute_loss` gathers the candidates from every process with gradient
(:func:`gather_features`) and either anchors all gathered rows (global loss) or only its own rows with labels
offset by ``rank * B`` (open_clip's ``local_loss``: same gradients, less memory). Nothing here knows about models
or training loops, so the same code runs on one device or many.

This module travels with every checkpoint as remote code: it imports only torch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

LossParts = dict[str, torch.Tensor]


def contrastive_ce(
    anchors: torch.Tensor, candidates: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of ``s · anchors · candidatesᵀ`` against each anchor's positive column.

    Args:
        anchors: `(A, D)` normalised embeddings, one softmax row each.
        candidates: `(C, D)` normalised embeddings, the columns every row is scored against.
        logit_scale: scalar *multiplier* ``s`` (already exponentiated).
        labels: `(A,)` column index of each anchor's positive; defaults to ``arange(A)``.
    """
    logits = logit_scale * anchors @ candidates.t()
    if labels is None:
        labels = torch.arange(anchors.shape[0], device=anchors.device)
    return F.cross_entropy(logits, labels)


def clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> LossParts:
    """CLIP's symmetric InfoNCE. ``image_embeds``/``text_embeds`` `(B, D)` are the anchors; ``all_*`` `(N·B, D)`
    the candidates (default: the anchors themselves); ``labels`` `(B,)` the positives' columns."""
    all_image_embeds = image_embeds if all_image_embeds is None else all_image_embeds
    all_text_embeds = text_embeds if all_text_embeds is None else all_text_embeds
    image_to_text = contrastive_ce(image_embeds, all_text_embeds, logit_scale, labels)
    text_to_image = contrastive_ce(text_embeds, all_image_embeds, logit_scale, labels)
    return {
        "loss": (image_to_text + text_to_image) / 2,
        "image_to_text": image_to_text,
        "text_to_image": text_to_image,
    }


def negclip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    all_negative_text_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> LossParts:
    """NegCLIP: every image is scored against all real *and* all negative captions (2B columns); the
    text-to-image direction is plain CLIP. Arguments as in :func:`clip_loss`."""
    all_image_embeds = image_embeds if all_image_embeds is None else all_image_embeds
    all_text_embeds = text_embeds if all_text_embeds is None else all_text_embeds
    all_negative_text_embeds = negative_text_embeds if all_negative_text_embeds is None else all_negative_text_embeds
    captions = torch.cat([all_text_embeds, all_negative_text_embeds])
    image_to_text = contrastive_ce(image_embeds, captions, logit_scale, labels)
    text_to_image = contrastive_ce(text_embeds, all_image_embeds, logit_scale, labels)
    return {
        "loss": (image_to_text + text_to_image) / 2,
        "image_to_text": image_to_text,
        "text_to_image": text_to_image,
    }


def tripletclip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor,
    negative_text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    all_negative_image_embeds: torch.Tensor | None = None,
    all_negative_text_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> LossParts:
    """TripletCLIP (paper Eq. 4): ``L_Neg(U, V, V') + L_Neg(U', V', V)``.

    The second term anchors the negative images: their positives are the negative captions and the real captions
    are their hard negatives. A negative image is never a candidate for a real caption, and real images are never
    compared with negative images. Returns the sum as ``loss`` and the two terms as ``real_anchor`` and
    ``negative_anchor``.
    """
    real = negclip_loss(
        image_embeds,
        text_embeds,
        negative_text_embeds,
        logit_scale,
        all_image_embeds=all_image_embeds,
        all_text_embeds=all_text_embeds,
        all_negative_text_embeds=all_negative_text_embeds,
        labels=labels,
    )
    negative = negclip_loss(
        negative_image_embeds,
        negative_text_embeds,
        text_embeds,
        logit_scale,
        all_image_embeds=all_negative_image_embeds,
        all_text_embeds=all_negative_text_embeds,
        all_negative_text_embeds=all_text_embeds,
        labels=labels,
    )
    return {"loss": real["loss"] + negative["loss"], "real_anchor": real["loss"], "negative_anchor": negative["loss"]}


def clip_hn_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor,
    negative_text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    all_negative_image_embeds: torch.Tensor | None = None,
    all_negative_text_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> LossParts:
    """LaCLIP+HN: CLIP over the 2B pairs ``[U; U']`` and ``[V; V']``, negatives as ordinary extra pairs."""
    all_image_embeds = image_embeds if all_image_embeds is None else all_image_embeds
    all_text_embeds = text_embeds if all_text_embeds is None else all_text_embeds
    all_negative_image_embeds = negative_image_embeds if all_negative_image_embeds is None else all_negative_image_embeds
    all_negative_text_embeds = negative_text_embeds if all_negative_text_embeds is None else all_negative_text_embeds
    if labels is None:
        labels = torch.arange(image_embeds.shape[0], device=image_embeds.device)
    # A negative pair's positive sits one block (all real pairs) further along the candidates.
    pair_labels = torch.cat([labels, labels + all_image_embeds.shape[0]])
    return clip_loss(
        torch.cat([image_embeds, negative_image_embeds]),
        torch.cat([text_embeds, negative_text_embeds]),
        logit_scale,
        all_image_embeds=torch.cat([all_image_embeds, all_negative_image_embeds]),
        all_text_embeds=torch.cat([all_text_embeds, all_negative_text_embeds]),
        labels=pair_labels,
    )


def negative_images_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    all_negative_image_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> LossParts:
    """The "negative images only" ablation, NegCLIP's mirror: every real caption is scored against all real and
    all negative images; the image-to-text direction is plain CLIP."""
    all_image_embeds = image_embeds if all_image_embeds is None else all_image_embeds
    all_text_embeds = text_embeds if all_text_embeds is None else all_text_embeds
    all_negative_image_embeds = negative_image_embeds if all_negative_image_embeds is None else all_negative_image_embeds
    image_to_text = contrastive_ce(image_embeds, all_text_embeds, logit_scale, labels)
    text_to_image = contrastive_ce(
        text_embeds, torch.cat([all_image_embeds, all_negative_image_embeds]), logit_scale, labels
    )
    return {
        "loss": (image_to_text + text_to_image) / 2,
        "image_to_text": image_to_text,
        "text_to_image": text_to_image,
    }


def gather_features(features: torch.Tensor, *, with_grad: bool = True) -> torch.Tensor:
    """Concatenate ``features`` `(B, D)` from every process along the batch, in rank order: `(N·B, D)`.

    With ``with_grad`` (the default) the gather is autograd-aware: the gradient that reaches each process's rows is
    the sum over processes, so after data-parallel gradient averaging the parameters get exactly the gradient of one
    process with the whole batch. (``accelerator.gather`` does not carry gradients.) Returns ``features`` unchanged
    on a single process. Every process must hold the same batch size.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    if with_grad:
        from torch.distributed._functional_collectives import all_gather_single_autograd

        return all_gather_single_autograd(features.contiguous(), gather_dim=0, group=dist.group.WORLD)
    gathered = [torch.empty_like(features) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, features.contiguous())
    # Keep the local rows in the graph so this process's own gradient still flows.
    gathered[dist.get_rank()] = features
    return torch.cat(gathered)


def compute_loss(
    loss_type: str,
    logit_scale: torch.Tensor,
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor | None = None,
    negative_text_embeds: torch.Tensor | None = None,
    *,
    local_loss: bool = False,
    gather_with_grad: bool = True,
) -> LossParts:
    """Compute ``loss_type``'s objective on this process's normalised embeddings, across all processes.

    Args:
        loss_type: one of ``"clip"``, ``"negclip"``, ``"tripletclip"``, ``"clip_hn"``, ``"negative_images"``.
        logit_scale: the scalar multiplier ``s`` (already exponentiated).
        image_embeds, text_embeds: `(B, D)`, L2-normalised.
        negative_image_embeds, negative_text_embeds: `(B, D)`, L2-normalised, where the objective needs them.
        local_loss: anchor only this process's rows (labels offset by ``rank·B``) instead of all gathered rows.
        gather_with_grad: see :func:`gather_features`.

    Returns:
        A dict with the scalar ``loss`` and its named parts (e.g. ``real_anchor``/``negative_anchor``).
    """
    named = {
        "image_embeds": image_embeds,
        "text_embeds": text_embeds,
        "negative_image_embeds": negative_image_embeds,
        "negative_text_embeds": negative_text_embeds,
    }
    named = {name: value for name, value in named.items() if value is not None}
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    kwargs: dict[str, torch.Tensor] = {}
    if distributed:
        gathered = {name: gather_features(value, with_grad=gather_with_grad) for name, value in named.items()}
        if local_loss:
            batch = image_embeds.shape[0]
            kwargs["labels"] = dist.get_rank() * batch + torch.arange(batch, device=image_embeds.device)
            kwargs.update({f"all_{name}": value for name, value in gathered.items()})
        else:
            named = gathered

    if loss_type == "clip":
        return clip_loss(named["image_embeds"], named["text_embeds"], logit_scale, **_only(kwargs, "image", "text"))
    if loss_type == "negclip":
        return negclip_loss(
            named["image_embeds"],
            named["text_embeds"],
            named["negative_text_embeds"],
            logit_scale,
            **_only(kwargs, "image", "text", "negative_text"),
        )
    if loss_type == "tripletclip":
        return tripletclip_loss(
            named["image_embeds"],
            named["text_embeds"],
            named["negative_image_embeds"],
            named["negative_text_embeds"],
            logit_scale,
            **kwargs,
        )
    if loss_type == "clip_hn":
        return clip_hn_loss(
            named["image_embeds"],
            named["text_embeds"],
            named["negative_image_embeds"],
            named["negative_text_embeds"],
            logit_scale,
            **kwargs,
        )
    if loss_type == "negative_images":
        return negative_images_loss(
            named["image_embeds"],
            named["text_embeds"],
            named["negative_image_embeds"],
            logit_scale,
            **_only(kwargs, "image", "text", "negative_image"),
        )
    raise ValueError(f"Unknown loss_type {loss_type!r}.")


def _only(kwargs: dict[str, torch.Tensor], *modalities: str) -> dict[str, torch.Tensor]:
    """Keep the ``labels`` and the ``all_<modality>_embeds`` candidates a loss function takes."""
    keep = {"labels"} | {f"all_{m}_embeds" for m in modalities}
    return {key: value for key, value in kwargs.items() if key in keep}


__all__ = [
    "contrastive_ce",
    "clip_loss",
    "negclip_loss",
    "tripletclip_loss",
    "clip_hn_loss",
    "negative_images_loss",
    "gather_features",
    "compute_loss",
]
