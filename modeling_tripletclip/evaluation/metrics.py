"""Scoring rules of the evaluation benchmarks, as small pure functions over score matrices.

Every function here takes similarity scores that a model has already produced (cosine similarities or logits; only
their order matters) and returns plain numbers. Nothing here loads data or runs a model, so each rule can be read,
tested and reused on its own.

Ties are always resolved against the model, following the official definitions:

- SugarCrepe and Winoground compare with a strict ``>``: a tie is wrong.
- Retrieval recall@k and zero-shot top-k place the correct candidate *after* every wrong candidate with the same
  score, so a constant scorer gets no credit for the ties it produces. For distinct scores this is exactly the
  usual top-k membership test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from dataset_builders.synthesis.rules import NEGATIVE_KINDS, SUGARCREPE_GROUPS

SUGARCREPE_OVERALL_DEFINITION = (
    "overall = unweighted mean of the seven subset accuracies (the number cards use); overall_weighted = the seven "
    "subsets weighted by their scored items, i.e. correct items / all items (SugarCrepe's own paper); "
    "overall_of_kinds = mean of replace, swap and add"
)
"""How the three SugarCrepe "overall" numbers of the literature are computed, stated wherever they are shown."""


def _as_array(values, name: str, ndim: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s), got shape {array.shape}.")
    return array


# SugarCrepe -----------------------------------------------------------------------------------------------------


def sugarcrepe_correct(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> np.ndarray:
    """Whether each item is correct: ``score(image, caption) > score(image, negative_caption)``, strictly.

    Args:
        positive_scores: shape `(num_items,)`, the score of each image with its caption.
        negative_scores: shape `(num_items,)`, the score of the same image with the negative caption.

    Returns:
        Boolean array of shape `(num_items,)`; a tie is ``False``.
    """
    positive = _as_array(positive_scores, "positive_scores", 1)
    negative = _as_array(negative_scores, "negative_scores", 1)
    if positive.shape != negative.shape:
        raise ValueError(
            f"positive_scores and negative_scores must have the same length, got {positive.shape[0]} and "
            f"{negative.shape[0]}."
        )
    return positive > negative


def sugarcrepe_accuracy(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Accuracy of one SugarCrepe subset: correct items / items (ties are wrong)."""
    correct = sugarcrepe_correct(positive_scores, negative_scores)
    if correct.size == 0:
        raise ValueError("Cannot compute an accuracy over zero items.")
    return float(correct.mean())


def sugarcrepe_summary(subset_accuracies: Mapping[str, float],
                       subset_sizes: Mapping[str, int] | None = None) -> dict[str, float]:
    """Add SugarCrepe's averages to per-subset accuracies.

    The kind averages (``replace``, ``swap``, ``add``) are the unweighted means of their subsets and appear only when
    all of their subsets are present. The literature's three "overall" numbers appear only when all seven subsets
    are present (:data:`SUGARCREPE_OVERALL_DEFINITION`): ``overall``, the unweighted mean of the seven;
    ``overall_weighted``, weighted by ``subset_sizes`` (the scored items per subset; only when given);
    ``overall_of_kinds``, the mean of the three kind averages.

    Returns:
        A new dict: the given subset accuracies followed by the averages that can be computed.
    """
    summary = dict(subset_accuracies)
    for kind, subsets in SUGARCREPE_GROUPS.items():
        if all(s in subset_accuracies for s in subsets):
            summary[kind] = float(np.mean([subset_accuracies[s] for s in subsets]))
    if all(s in subset_accuracies for s in NEGATIVE_KINDS):
        summary["overall"] = float(np.mean([subset_accuracies[s] for s in NEGATIVE_KINDS]))
        if subset_sizes is not None:
            sizes = np.array([subset_sizes[s] for s in NEGATIVE_KINDS], dtype=np.float64)
            summary["overall_weighted"] = float(np.dot(sizes, [subset_accuracies[s] for s in NEGATIVE_KINDS])
                                                / sizes.sum())
        summary["overall_of_kinds"] = float(np.mean([summary[kind] for kind in SUGARCREPE_GROUPS]))
    return summary


# Winoground -----------------------------------------------------------------------------------------------------


def winoground_correct(scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Winoground's text, image and group correctness of each item.

    Args:
        scores: shape `(num_items, 2, 2)`, ``scores[n, c, i]`` = s(caption_c, image_i) of item n.

    Returns:
        Three boolean arrays of shape `(num_items,)`:
        text = s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1);
        image = s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0);
        group = text and image. All comparisons are strict.
    """
    s = _as_array(scores, "scores", 3)
    if s.shape[1:] != (2, 2):
        raise ValueError(f"`scores` must have shape (num_items, 2, 2) indexed [item, caption, image], got {s.shape}.")
    c0i0, c0i1, c1i0, c1i1 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    text = (c0i0 > c1i0) & (c1i1 > c0i1)
    image = (c0i0 > c0i1) & (c1i1 > c1i0)
    return text, image, text & image


def winoground_metrics(scores, tags: Sequence[str] | None = None) -> dict[str, float]:
    """Winoground's ``text``, ``image`` and ``group`` scores, overall and, given tags, per tag.

    Args:
        scores: shape `(num_items, 2, 2)` as in :func:`winoground_correct`.
        tags: optional, one tag per item; adds ``"<tag>/text"``, ``"<tag>/image"``, ``"<tag>/group"`` for each
            distinct tag (sorted).

    Returns:
        Fractions in [0, 1].
    """
    text, image, group = winoground_correct(scores)
    if text.size == 0:
        raise ValueError("Cannot compute Winoground scores over zero items.")
    metrics = {"text": float(text.mean()), "image": float(image.mean()), "group": float(group.mean())}
    if tags is not None:
        tags = np.asarray(list(tags), dtype=object)
        if tags.shape != text.shape:
            raise ValueError(f"Got {tags.shape[0]} tags for {text.shape[0]} items: give one tag per item.")
        for tag in sorted({str(t) for t in tags if t is not None and str(t) != ""}):
            mask = np.array([str(t) == tag for t in tags])
            for name, correct in (("text", text), ("image", image), ("group", group)):
                metrics[f"{tag}/{name}"] = float(correct[mask].mean())
    return metrics


# BiVLC -----------------------------------------------------------------------------------------------------------

#: BiVLC's per-item decisions, in the order its evaluation reports them.
BIVLC_METRICS = ("I2T", "T2I", "group", "Ipos_2T", "Ineg_2T", "Tpos_2I", "Tneg_2I")


def bivlc_correct(scores) -> dict[str, np.ndarray]:
    """BiVLC's decisions for each item (``src/CLIP_fine_tuning/CLIP_utils.py``, ``evaluate_BiVLC``), all strict.

    Args:
        scores: shape `(num_items, 2, 2)`, ``scores[n, c, i]`` = s(caption_c, image_i) with caption_0 / image_0 the
            positive pair and caption_1 / image_1 the negative pair.

    Returns:
        ``{"Ipos_2T": s(c0,i0) > s(c1,i0), "Ineg_2T": s(c1,i1) > s(c0,i1), "Tpos_2I": s(c0,i0) > s(c0,i1),
        "Tneg_2I": s(c1,i1) > s(c1,i0), "I2T": Ipos_2T and Ineg_2T, "T2I": Tpos_2I and Tneg_2I, "group": both}``.
    """
    s = _as_array(scores, "scores", 3)
    if s.shape[1:] != (2, 2):
        raise ValueError(f"`scores` must have shape (num_items, 2, 2) indexed [item, caption, image], got {s.shape}.")
    c0i0, c0i1, c1i0, c1i1 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    out = {"Ipos_2T": c0i0 > c1i0, "Ineg_2T": c1i1 > c0i1, "Tpos_2I": c0i0 > c0i1, "Tneg_2I": c1i1 > c1i0}
    out["I2T"] = out["Ipos_2T"] & out["Ineg_2T"]
    out["T2I"] = out["Tpos_2I"] & out["Tneg_2I"]
    out["group"] = out["I2T"] & out["T2I"]
    return out


def bivlc_metrics(scores, types: Sequence[str] | None = None, subtypes: Sequence[str] | None = None
                  ) -> dict[str, float]:
    """BiVLC's scores: each of :data:`BIVLC_METRICS` as the share of items (``main_evaluation_BiVLC.py``: sum / len),
    overall, per ``type`` (``"<type>/<metric>"``) and per type and subtype (``"<type>_<subtype>/<metric>"``)."""
    correct = bivlc_correct(scores)
    count = correct["I2T"].size
    if count == 0:
        raise ValueError("Cannot compute BiVLC scores over zero items.")
    metrics = {name: float(correct[name].mean()) for name in BIVLC_METRICS}
    groups: dict[str, np.ndarray] = {}
    if types is not None:
        types = np.asarray([str(t) for t in types], dtype=object)
        if types.shape != (count,):
            raise ValueError(f"Got {types.shape[0]} types for {count} items: give one per item.")
        for value in sorted(set(types) - {"", "None"}):
            groups[value] = types == value
        if subtypes is not None:
            subtypes = np.asarray([str(t) for t in subtypes], dtype=object)
            for value in sorted({f"{t}_{u}" for t, u in zip(types, subtypes)} - {"_", "None_None"}):
                groups[value] = np.array([f"{t}_{u}" == value for t, u in zip(types, subtypes)])
    for group, mask in groups.items():
        for name in BIVLC_METRICS:
            metrics[f"{group}/{name}"] = float(correct[name][mask].mean())
    return metrics


# Ranking --------------------------------------------------------------------------------------------------------


def rank_of_targets(scores, targets: Sequence[int]) -> np.ndarray:
    """Position (0-based) of each row's target column when the row is sorted by decreasing score.

    Ties are resolved against the target: every other column whose score is greater than *or equal to* the
    target's score ranks before it. The target is in the top k exactly when its rank is ``< k``.

    Args:
        scores: shape `(num_rows, num_columns)`.
        targets: shape `(num_rows,)`, the correct column of each row.

    Returns:
        Integer array of shape `(num_rows,)`.
    """
    s = _as_array(scores, "scores", 2)
    t = np.asarray(targets, dtype=np.int64)
    if t.shape != (s.shape[0],):
        raise ValueError(f"Expected one target per row ({s.shape[0]}), got shape {t.shape}.")
    if t.size and (t.min() < 0 or t.max() >= s.shape[1]):
        raise ValueError(f"Targets must be column indices in [0, {s.shape[1]}), got values in [{t.min()}, {t.max()}].")
    target_scores = s[np.arange(s.shape[0]), t]
    # Count every column at or above the target's score, then remove the target itself.
    return (s >= target_scores[:, None]).sum(axis=1) - 1


# Retrieval ------------------------------------------------------------------------------------------------------


def retrieval_recall(scores, text_to_image: Sequence[int], ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """Image and text retrieval recall@k with several captions per image (CLIP_benchmark's semantics).

    Args:
        scores: shape `(num_images, num_texts)`, ``scores[i, t]`` = s(image_i, text_t).
        text_to_image: shape `(num_texts,)`, the index of the image each text describes.
        ks: the cut-offs k.

    Returns:
        ``image_retrieval_recall@k``: fraction of texts whose image is among that text's top k images.
        ``text_retrieval_recall@k``: fraction of images with at least one of their texts among that image's top k
        texts. Ties are resolved against the correct candidates (see the module docstring).
    """
    s = _as_array(scores, "scores", 2)
    owner = np.asarray(text_to_image, dtype=np.int64)
    num_images, num_texts = s.shape
    if owner.shape != (num_texts,):
        raise ValueError(f"`text_to_image` must have one image index per text ({num_texts}), got shape {owner.shape}.")
    if num_texts == 0 or num_images == 0:
        raise ValueError("Retrieval needs at least one image and one text.")
    if owner.min() < 0 or owner.max() >= num_images:
        raise ValueError(f"`text_to_image` holds indices outside [0, {num_images}).")
    ks = sorted(set(int(k) for k in ks))

    # Image retrieval: one correct image per text.
    image_ranks = rank_of_targets(s.T, owner)

    # Text retrieval: the image's best-scoring correct text counts; it ranks after every wrong text at or above it.
    is_own = owner[None, :] == np.arange(num_images)[:, None]  # (num_images, num_texts)
    has_text = is_own.any(axis=1)
    best_own = np.where(is_own, s, -np.inf).max(axis=1)
    text_ranks = ((s >= best_own[:, None]) & ~is_own).sum(axis=1)

    metrics = {}
    for k in ks:
        metrics[f"image_retrieval_recall@{k}"] = float((image_ranks < k).mean())
    for k in ks:
        metrics[f"text_retrieval_recall@{k}"] = float((text_ranks[has_text] < k).mean()) if has_text.any() else 0.0
    return metrics


# Zero-shot classification ---------------------------------------------------------------------------------------


def zero_shot_metrics_from_ranks(
    ranks: Sequence[int], labels: Sequence[int], ks: Iterable[int] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy and mean per-class recall from the rank of each sample's true class.

    Args:
        ranks: shape `(num_samples,)`, as returned by :func:`rank_of_targets` on the classification logits.
        labels: shape `(num_samples,)`, the true class of each sample.
        ks: the cut-offs k of the ``top{k}`` metrics.

    Returns:
        ``top{k}`` for each k, and ``mean_per_class_recall``: the mean over the classes present in ``labels`` of the
        fraction of their samples predicted correctly (top-1), as sklearn's ``balanced_accuracy_score``.
    """
    r = np.asarray(ranks, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if r.shape != y.shape or r.ndim != 1:
        raise ValueError(f"ranks and labels must be 1-d and of equal length, got {r.shape} and {y.shape}.")
    if r.size == 0:
        raise ValueError("Cannot compute zero-shot metrics over zero samples.")
    metrics = {f"top{k}": float((r < k).mean()) for k in sorted(set(int(k) for k in ks))}
    correct = r == 0
    metrics["mean_per_class_recall"] = float(np.mean([correct[y == c].mean() for c in np.unique(y)]))
    return metrics


def zero_shot_metrics(logits, labels: Sequence[int], ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Zero-shot classification metrics from logits of shape `(num_samples, num_classes)` (see
    :func:`zero_shot_metrics_from_ranks`). A tie between the true class and another class counts against it."""
    return zero_shot_metrics_from_ranks(rank_of_targets(logits, labels), labels, ks)


# Similarity analysis --------------------------------------------------------------------------------------------


def rowwise_cosine(a, b) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``; both of shape `(num_rows, dim)`."""
    a = _as_array(a, "a", 2)
    b = _as_array(b, "b", 2)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}.")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def similarity_summary(similarities: Sequence[float], prefix: str) -> dict[str, float]:
    """Mean, standard deviation and median of a set of cosine similarities, keyed ``<prefix>_mean`` etc."""
    v = _as_array(similarities, "similarities", 1)
    if v.size == 0:
        raise ValueError("Cannot summarise zero similarities.")
    return {f"{prefix}_mean": float(v.mean()), f"{prefix}_std": float(v.std()), f"{prefix}_median": float(np.median(v))}


__all__ = [
    "SUGARCREPE_OVERALL_DEFINITION",
    "sugarcrepe_correct",
    "sugarcrepe_accuracy",
    "sugarcrepe_summary",
    "winoground_correct",
    "winoground_metrics",
    "rank_of_targets",
    "retrieval_recall",
    "zero_shot_metrics_from_ranks",
    "zero_shot_metrics",
    "rowwise_cosine",
    "similarity_summary",
]
