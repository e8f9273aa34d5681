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

CyCLIP's consistency terms (Goel et al., 2022) can be added to any of them (:func:`cyclip_terms`), over the ``n``
image–caption pairs the objective trains on (real pairs, plus the negative pairs where it has both negatives):

- in-modal:    ``(1/n) Σ_ij (u_i·u_j − v_i·v_j)²``  (image–image against text–text similarities)
- cross-modal: ``(1/n) Σ_ij (u_i·v_j − v_i·u_j)²``  (image-to-text against text-to-image similarities)

which is CyCLIP's ``(s·A − s·B)².mean() / s² · n``: independent of the temperature.

Every function takes the rows it *anchors* and, separately, the *candidates* they are scored against, plus the
column index of each anchor's positive (``labels``). On one process the anchors are the candidates and the labels
are ``arange(B)``. :data:`OBJECTIVES` maps each ``loss_type`` to its function and the embeddings it uses;
:func:`compute_loss` is the one entry.

Across processes, gathering is the caller's decision, as in open_clip: a trainer that splits a contrastive batch over
processes passes what it knows about them (:class:`Gather`: this process's rank, the number of processes, the group);
:func:`compute_loss` then gathers the candidates from every process with gradient and either anchors all gathered
rows (global loss) or only its own rows with labels offset by ``rank * B`` (``local_loss``: same gradients, less
memory). Without a `Gather` nothing crosses processes, whatever process group happens to exist. Nothing here knows
about models or training loops, so the same code runs on one device or many.

This module travels as remote code with checkpoints of the ``remote_code`` form: it imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed._functional_collectives import all_gather_single_autograd
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


def _or(candidates: torch.Tensor | None, anchors: torch.Tensor) -> torch.Tensor:
    """The candidates a caller gathered, or (on one process) the anchors themselves."""
    return anchors if candidates is None else candidates


def _both_directions(image_to_text: torch.Tensor, text_to_image: torch.Tensor) -> LossParts:
    return {"loss": (image_to_text + text_to_image) / 2, "image_to_text": image_to_text, "text_to_image": text_to_image}


Tensor = torch.Tensor
OptionalTensor = torch.Tensor | None


def clip_loss(image_embeds: Tensor, text_embeds: Tensor, logit_scale: Tensor, *, all_image_embeds: OptionalTensor = None,
              all_text_embeds: OptionalTensor = None, labels: OptionalTensor = None) -> LossParts:
    """CLIP's symmetric InfoNCE. ``image_embeds``/``text_embeds`` `(B, D)` are the anchors; ``all_*`` `(N·B, D)`
    the candidates (default: the anchors themselves); ``labels`` `(B,)` the positives' columns."""
    return _both_directions(contrastive_ce(image_embeds, _or(all_text_embeds, text_embeds), logit_scale, labels),
                            contrastive_ce(text_embeds, _or(all_image_embeds, image_embeds), logit_scale, labels))


def negclip_loss(image_embeds: Tensor, text_embeds: Tensor, negative_text_embeds: Tensor, logit_scale: Tensor, *,
                 all_image_embeds: OptionalTensor = None, all_text_embeds: OptionalTensor = None,
                 all_negative_text_embeds: OptionalTensor = None, labels: OptionalTensor = None) -> LossParts:
    """NegCLIP: every image is scored against all real *and* all negative captions (2B columns); the
    text-to-image direction is plain CLIP. Arguments as in :func:`clip_loss`."""
    captions = torch.cat([_or(all_text_embeds, text_embeds), _or(all_negative_text_embeds, negative_text_embeds)])
    return _both_directions(contrastive_ce(image_embeds, captions, logit_scale, labels),
                            contrastive_ce(text_embeds, _or(all_image_embeds, image_embeds), logit_scale, labels))


def tripletclip_loss(image_embeds: Tensor, text_embeds: Tensor, negative_image_embeds: Tensor,
                     negative_text_embeds: Tensor, logit_scale: Tensor, *, all_image_embeds: OptionalTensor = None,
                     all_text_embeds: OptionalTensor = None, all_negative_image_embeds: OptionalTensor = None,
                     all_negative_text_embeds: OptionalTensor = None, labels: OptionalTensor = None) -> LossParts:
    """TripletCLIP (paper Eq. 4): ``L_Neg(U, V, V') + L_Neg(U', V', V)``.

    The second term anchors the negative images: their positives are the negative captions and the real captions
    are their hard negatives. A negative image is never a candidate for a real caption, and real images are never
    compared with negative images. Returns the sum as ``loss`` and the two terms as ``real_anchor`` and
    ``negative_anchor``.
    """
    real = negclip_loss(image_embeds, text_embeds, negative_text_embeds, logit_scale, labels=labels,
                        all_image_embeds=all_image_embeds, all_text_embeds=all_text_embeds,
                        all_negative_text_embeds=all_negative_text_embeds)["loss"]
    negative = negclip_loss(negative_image_embeds, negative_text_embeds, text_embeds, logit_scale, labels=labels,
                            all_image_embeds=all_negative_image_embeds, all_text_embeds=all_negative_text_embeds,
                            all_negative_text_embeds=all_text_embeds)["loss"]
    return {"loss": real + negative, "real_anchor": real, "negative_anchor": negative}


def clip_hn_loss(image_embeds: Tensor, text_embeds: Tensor, negative_image_embeds: Tensor,
                 negative_text_embeds: Tensor, logit_scale: Tensor, *, all_image_embeds: OptionalTensor = None,
                 all_text_embeds: OptionalTensor = None, all_negative_image_embeds: OptionalTensor = None,
                 all_negative_text_embeds: OptionalTensor = None, labels: OptionalTensor = None) -> LossParts:
    """LaCLIP+HN: CLIP over the 2B pairs ``[U; U']`` and ``[V; V']``, negatives as ordinary extra pairs."""
    all_images = _or(all_image_embeds, image_embeds)
    if labels is None:
        labels = torch.arange(image_embeds.shape[0], device=image_embeds.device)
    # A negative pair's positive sits one block (all real pairs) further along the candidates.
    pair_labels = torch.cat([labels, labels + all_images.shape[0]])
    return clip_loss(
        torch.cat([image_embeds, negative_image_embeds]),
        torch.cat([text_embeds, negative_text_embeds]),
        logit_scale,
        all_image_embeds=torch.cat([all_images, _or(all_negative_image_embeds, negative_image_embeds)]),
        all_text_embeds=torch.cat([_or(all_text_embeds, text_embeds), _or(all_negative_text_embeds,
                                                                          negative_text_embeds)]),
        labels=pair_labels,
    )


def negative_images_loss(image_embeds: Tensor, text_embeds: Tensor, negative_image_embeds: Tensor,
                         logit_scale: Tensor, *, all_image_embeds: OptionalTensor = None,
                         all_text_embeds: OptionalTensor = None, all_negative_image_embeds: OptionalTensor = None,
                         labels: OptionalTensor = None) -> LossParts:
    """The "negative images only" ablation, NegCLIP's mirror: every real caption is scored against all real and
    all negative images; the image-to-text direction is plain CLIP."""
    images = torch.cat([_or(all_image_embeds, image_embeds), _or(all_negative_image_embeds, negative_image_embeds)])
    return _both_directions(contrastive_ce(image_embeds, _or(all_text_embeds, text_embeds), logit_scale, labels),
                            contrastive_ce(text_embeds, images, logit_scale, labels))


def cyclip_terms(image_embeds: Tensor, text_embeds: Tensor, *, all_image_embeds: OptionalTensor = None,
                 all_text_embeds: OptionalTensor = None) -> LossParts:
    """CyCLIP's two consistency regularisers over the pairs ``(u_i, v_i)``.

    Args:
        image_embeds, text_embeds: `(A, D)` the anchored pairs (this process's rows).
        all_image_embeds, all_text_embeds: `(n, D)` every pair of the batch (default: the anchors themselves).

    Returns:
        ``in_modal`` and ``cross_modal``: each the mean over the anchored rows ``i`` of ``Σ_j d_ij²`` over all ``n``
        pairs ``j``. With the anchors being all pairs this is CyCLIP's definition; anchoring each process's rows,
        the mean over processes equals it (and so do the gradients after data-parallel averaging).
    """
    all_images, all_texts = _or(all_image_embeds, image_embeds), _or(all_text_embeds, text_embeds)
    in_modal = image_embeds @ all_images.t() - text_embeds @ all_texts.t()
    cross_modal = image_embeds @ all_texts.t() - text_embeds @ all_images.t()
    return {"in_modal": in_modal.square().sum(dim=1).mean(), "cross_modal": cross_modal.square().sum(dim=1).mean()}


@dataclass(frozen=True)
class Gather:
    """The processes a contrastive batch is split over, as the caller (a trainer) knows them.

    Args:
        rank: this process's index among them (its rows come at ``rank * B`` in the gathered batch).
        world_size: how many processes share the batch; every one holds the same number of rows ``B``.
        group: the `torch.distributed` process group (None: the default group).
    """

    rank: int
    world_size: int
    group: Any = None

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"Gather: rank {self.rank} is not in [0, {self.world_size}).")


def gather_features(features: torch.Tensor, gather: Gather) -> torch.Tensor:
    """Concatenate ``features`` `(B, D)` from every process of ``gather`` along the batch, in rank order: `(N·B, D)`.

    The gather is autograd-aware: the gradient that reaches each process's rows is the sum
    over processes, so after data-parallel gradient averaging the parameters get exactly the gradient of one process
    with the whole batch. (``accelerator.gather`` does not carry gradients.) Every process must hold the same batch
    size and call this in the same order.
    """
    if gather.world_size == 1:
        return features
    group = gather.group if gather.group is not None else dist.group.WORLD
    return all_gather_single_autograd(features.contiguous(), gather_dim=0, group=group)


@dataclass(frozen=True)
class Objective:
    """Everything about a training objective, in one place: its ``loss_type`` name, its display label and
    description (cards, reports), its loss function and the embeddings it takes, in the function's positional order
    (which say what it needs: negative captions, negative images)."""

    name: str
    label: str
    description: str
    function: Callable[..., LossParts]
    inputs: tuple[str, ...]

    @property
    def needs_negative_captions(self) -> bool:
        return "negative_text_embeds" in self.inputs

    @property
    def needs_negative_images(self) -> bool:
        return "negative_image_embeds" in self.inputs


OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (
    Objective("clip", "CLIP", "CLIP contrastive loss on real pairs only", clip_loss, ("image_embeds", "text_embeds")),
    Objective("negclip", "NegCLIP", "NegCLIP: negative captions join the image-to-text softmax", negclip_loss,
              ("image_embeds", "text_embeds", "negative_text_embeds")),
    Objective("tripletclip", "TripletCLIP", "TripletCLIP: NegCLIP anchored on the real images plus NegCLIP anchored "
              "on the negative images", tripletclip_loss,
              ("image_embeds", "text_embeds", "negative_image_embeds", "negative_text_embeds")),
    Objective("clip_hn", "LaCLIP+HN", "CLIP with the negative pairs added to the batch as ordinary pairs (LaCLIP+HN)",
              clip_hn_loss, ("image_embeds", "text_embeds", "negative_image_embeds", "negative_text_embeds")),
    Objective("negative_images", "Neg. images only", "negative images only: they join the text-to-image softmax as "
              "hard negatives", negative_images_loss, ("image_embeds", "text_embeds", "negative_image_embeds")),
)}
"""Every ``loss_type``: the one owner of what an objective is and needs."""

LOSS_TYPES: tuple[str, ...] = tuple(OBJECTIVES)


def objective(loss_type: str) -> Objective:
    """The objective named ``loss_type``, or a `ValueError` listing them."""
    if loss_type not in OBJECTIVES:
        raise ValueError(f"Unknown loss_type {loss_type!r}. Choose one of: {', '.join(map(repr, LOSS_TYPES))}.")
    return OBJECTIVES[loss_type]


def check_loss_type(loss_type: str) -> str:
    """Return ``loss_type`` if it names an objective, else raise a `ValueError` listing them."""
    return objective(loss_type).name


def check_cyclip_weights(in_modal: float, cross_modal: float) -> None:
    """Raise a `ValueError`, naming the weight, unless both CyCLIP weights are zero or more."""
    for name, weight in (("cyclip_in_modal_weight", in_modal), ("cyclip_cross_modal_weight", cross_modal)):
        if weight < 0:
            raise ValueError(f"{name} cannot be negative (got {weight}); 0 turns the term off")


def compute_loss(
    loss_type: str,
    logit_scale: torch.Tensor,
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor | None = None,
    negative_text_embeds: torch.Tensor | None = None,
    *,
    gather: Gather | None = None,
    local_loss: bool = False,
    cyclip_in_modal_weight: float = 0.0,
    cyclip_cross_modal_weight: float = 0.0,
) -> LossParts:
    """Compute ``loss_type``'s objective on this process's normalised embeddings.

    Args:
        loss_type: one of :data:`LOSS_TYPES`.
        logit_scale: the scalar multiplier ``s`` (already exponentiated).
        image_embeds, text_embeds: `(B, D)`, L2-normalised.
        negative_image_embeds, negative_text_embeds: `(B, D)`, L2-normalised, where the objective needs them.
        gather: the processes the batch is split over (see :class:`Gather`); None computes on these rows alone.
        local_loss: with ``gather``, anchor only this process's rows (labels offset by ``rank·B``) instead of all
            gathered rows.
        cyclip_in_modal_weight, cyclip_cross_modal_weight: weights of CyCLIP's consistency terms
            (:func:`cyclip_terms`, on the same gathered embeddings) added to the loss; 0 leaves a term out. CyCLIP
            trains with 0.25 each.

    Returns:
        A dict with the scalar ``loss`` and its named parts (e.g. ``real_anchor``/``negative_anchor``, and
        ``cyclip_in_modal``/``cyclip_cross_modal`` unweighted where they are on).
    """
    objective = OBJECTIVES[check_loss_type(loss_type)]
    if cyclip_in_modal_weight < 0 or cyclip_cross_modal_weight < 0:
        raise ValueError(f"CyCLIP's weights cannot be negative (got in-modal {cyclip_in_modal_weight}, cross-modal "
                         f"{cyclip_cross_modal_weight}).")
    given = {
        "image_embeds": image_embeds,
        "text_embeds": text_embeds,
        "negative_image_embeds": negative_image_embeds,
        "negative_text_embeds": negative_text_embeds,
    }
    missing = [name for name in objective.inputs if given[name] is None]
    if missing:
        raise ValueError(f"loss_type={loss_type!r} needs {', '.join(missing)}.")
    anchors = [given[name] for name in objective.inputs]
    candidates: dict[str, torch.Tensor] = {}
    labels = None
    if gather is not None and gather.world_size > 1:
        gathered = [gather_features(embeds, gather) for embeds in anchors]
        if local_loss:
            batch = image_embeds.shape[0]
            labels = gather.rank * batch + torch.arange(batch, device=image_embeds.device)
            candidates = {f"all_{name}": embeds for name, embeds in zip(objective.inputs, gathered)}
        else:
            anchors = gathered
    parts = objective.function(*anchors, logit_scale, labels=labels, **candidates)
    if cyclip_in_modal_weight or cyclip_cross_modal_weight:
        anchored = dict(zip(objective.inputs, anchors))
        columns = {name: candidates.get(f"all_{name}", anchored[name]) for name in objective.inputs}
        all_images, all_texts = _pairs(objective, columns)
        terms = cyclip_terms(*_pairs(objective, anchored), all_image_embeds=all_images, all_text_embeds=all_texts)
        for name, weight in (("in_modal", cyclip_in_modal_weight), ("cross_modal", cyclip_cross_modal_weight)):
            if weight:
                parts["loss"] = parts["loss"] + weight * terms[name]
                parts[f"cyclip_{name}"] = terms[name]
    return parts


def _pairs(objective: Objective, embeds: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The image–caption pairs an objective trains on: the real pairs, and the negative pairs where it has both
    negatives, as `(images, captions)`."""
    if objective.needs_negative_images and objective.needs_negative_captions:
        return (torch.cat([embeds["image_embeds"], embeds["negative_image_embeds"]]),
                torch.cat([embeds["text_embeds"], embeds["negative_text_embeds"]]))
    return embeds["image_embeds"], embeds["text_embeds"]


__all__ = [
    "LOSS_TYPES",
    "OBJECTIVES",
    "Gather",
    "Objective",
    "check_cyclip_weights",
    "check_loss_type",
    "clip_hn_loss",
    "clip_loss",
    "compute_loss",
    "contrastive_ce",
    "cyclip_terms",
    "gather_features",
    "negative_images_loss",
    "negclip_loss",
    "objective",
    "tripletclip_loss",
]
