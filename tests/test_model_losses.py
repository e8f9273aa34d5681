"""The losses against an independent, straightforward implementation of the equations (loops over rows)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_tripletclip.losses import compute_loss

B, D = 5, 7


def row_ce(scores: list[float], target: int) -> torch.Tensor:
    """-log softmax(scores)[target], written out."""
    scores = torch.stack(scores)
    return -(scores[target] - torch.log(torch.exp(scores).sum()))


def dot(a, b):
    return (a * b).sum()


def reference_clip(U, V, s):
    i2t = sum(row_ce([s * dot(U[i], V[j]) for j in range(len(V))], i) for i in range(len(U))) / len(U)
    t2i = sum(row_ce([s * dot(V[i], U[j]) for j in range(len(U))], i) for i in range(len(V))) / len(V)
    return (i2t + t2i) / 2


def reference_negclip(U, V, Vn, s):
    n = len(U)
    i2t = sum(
        row_ce([s * dot(U[i], V[j]) for j in range(n)] + [s * dot(U[i], Vn[j]) for j in range(n)], i) for i in range(n)
    ) / n
    t2i = sum(row_ce([s * dot(V[i], U[j]) for j in range(n)], i) for i in range(n)) / n
    return (i2t + t2i) / 2


def reference_negative_images(U, V, Un, s):
    n = len(U)
    i2t = sum(row_ce([s * dot(U[i], V[j]) for j in range(n)], i) for i in range(n)) / n
    t2i = sum(
        row_ce([s * dot(V[i], U[j]) for j in range(n)] + [s * dot(V[i], Un[j]) for j in range(n)], i) for i in range(n)
    ) / n
    return (i2t + t2i) / 2


REFERENCES = {
    "clip": lambda U, V, Un, Vn, s: reference_clip(U, V, s),
    "negclip": lambda U, V, Un, Vn, s: reference_negclip(U, V, Vn, s),
    "tripletclip": lambda U, V, Un, Vn, s: reference_negclip(U, V, Vn, s) + reference_negclip(Un, Vn, V, s),
    "clip_hn": lambda U, V, Un, Vn, s: reference_clip(torch.cat([U, Un]), torch.cat([V, Vn]), s),
    "negative_images": lambda U, V, Un, Vn, s: reference_negative_images(U, V, Un, s),
}


def embeddings(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(B, D, generator=generator, dtype=torch.float64), dim=-1) for _ in range(4)]


@pytest.mark.parametrize("loss_type", list(REFERENCES))
def test_loss_and_gradients_match_reference(loss_type):
    U, V, Un, Vn = embeddings(0)
    s = torch.tensor(math.exp(2.3), dtype=torch.float64)

    ours = [t.clone().requires_grad_(True) for t in (U, V, Un, Vn)]
    loss = compute_loss(loss_type, s, *ours)["loss"]
    theirs = [t.clone().requires_grad_(True) for t in (U, V, Un, Vn)]
    expected = REFERENCES[loss_type](*theirs, s)

    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    loss.backward()
    expected.backward()
    for name, a, b in zip(("U", "V", "U'", "V'"), ours, theirs):
        if b.grad is None:  # this objective does not use that input
            assert a.grad is None or torch.count_nonzero(a.grad) == 0, name
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=f"gradient w.r.t. {name}")


def reference_cyclip(U, V, in_weight, cross_weight):
    """CyCLIP's terms written from its definition: over the n pairs, (1/n) Σ_ij of the squared differences of
    image–image vs text–text and image-to-text vs text-to-image similarities."""
    n = len(U)
    in_modal = sum((dot(U[i], U[j]) - dot(V[i], V[j])) ** 2 for i in range(n) for j in range(n)) / n
    cross_modal = sum((dot(U[i], V[j]) - dot(V[i], U[j])) ** 2 for i in range(n) for j in range(n)) / n
    return in_weight * in_modal + cross_weight * cross_modal, in_modal, cross_modal


#: The pairs each objective has: both negatives make the negative pairs extra pairs.
CYCLIP_PAIRS = {
    "clip": lambda U, V, Un, Vn: (U, V),
    "negclip": lambda U, V, Un, Vn: (U, V),
    "tripletclip": lambda U, V, Un, Vn: (torch.cat([U, Un]), torch.cat([V, Vn])),
    "clip_hn": lambda U, V, Un, Vn: (torch.cat([U, Un]), torch.cat([V, Vn])),
    "negative_images": lambda U, V, Un, Vn: (U, V),
}


@pytest.mark.parametrize("loss_type", list(REFERENCES))
def test_cyclip_terms_match_a_loop_implementation_with_every_loss_type(loss_type):
    U, V, Un, Vn = embeddings(3)
    s = torch.tensor(math.exp(2.3), dtype=torch.float64)
    weights = {"cyclip_in_modal_weight": 0.25, "cyclip_cross_modal_weight": 0.5}

    ours = [t.clone().requires_grad_(True) for t in (U, V, Un, Vn)]
    parts = compute_loss(loss_type, s, *ours, **weights)
    theirs = [t.clone().requires_grad_(True) for t in (U, V, Un, Vn)]
    regulariser, in_modal, cross_modal = reference_cyclip(*CYCLIP_PAIRS[loss_type](*theirs), 0.25, 0.5)
    expected = REFERENCES[loss_type](*theirs, s) + regulariser

    torch.testing.assert_close(parts["cyclip_in_modal"], in_modal, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(parts["cyclip_cross_modal"], cross_modal, rtol=1e-10, atol=1e-12)
    assert float(in_modal.detach()) > 1e-3 and float(cross_modal.detach()) > 1e-3  # random embeddings are far from consistent
    torch.testing.assert_close(parts["loss"], expected, rtol=1e-10, atol=1e-10)
    parts["loss"].backward()
    expected.backward()
    for name, a, b in zip(("U", "V", "U'", "V'"), ours, theirs):
        if b.grad is None:
            assert a.grad is None or torch.count_nonzero(a.grad) == 0, name
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=f"gradient w.r.t. {name}")


def test_cyclip_terms_vanish_on_consistent_embeddings_and_ignore_the_temperature():
    U, _, _, _ = embeddings(4)
    parts = compute_loss("clip", torch.tensor(7.0, dtype=torch.float64), U, U.clone(),
                         cyclip_in_modal_weight=0.25, cyclip_cross_modal_weight=0.25)
    assert float(parts["cyclip_in_modal"]) == pytest.approx(0, abs=1e-12)  # identical towers are consistent
    assert float(parts["cyclip_cross_modal"]) == pytest.approx(0, abs=1e-12)
    U, V, _, _ = embeddings(5)
    at = [compute_loss("clip", torch.tensor(scale, dtype=torch.float64), U, V, cyclip_in_modal_weight=1.0)
          ["cyclip_in_modal"] for scale in (1.0, 100.0)]
    torch.testing.assert_close(at[0], at[1])
    assert "cyclip_cross_modal" not in compute_loss("clip", torch.tensor(1.0), U, V, cyclip_in_modal_weight=1.0)
    with pytest.raises(ValueError, match="cannot be negative"):
        compute_loss("clip", torch.tensor(1.0), U, V, cyclip_cross_modal_weight=-0.1)


def test_tripletclip_parts_are_the_two_negclip_terms():
    U, V, Un, Vn = embeddings(1)
    s = torch.tensor(10.0, dtype=torch.float64)
    parts = compute_loss("tripletclip", s, U, V, Un, Vn)
    torch.testing.assert_close(parts["real_anchor"], reference_negclip(U, V, Vn, s))
    torch.testing.assert_close(parts["negative_anchor"], reference_negclip(Un, Vn, V, s))
    torch.testing.assert_close(parts["loss"], parts["real_anchor"] + parts["negative_anchor"])


def test_negative_images_never_candidates_for_real_captions_in_tripletclip():
    """Moving a negative image closer to a real caption must not change the TripletCLIP loss's real-anchor term,
    and real images are never compared with negative images."""
    U, V, Un, Vn = embeddings(2)
    s = torch.tensor(20.0, dtype=torch.float64)
    base = compute_loss("tripletclip", s, U, V, Un, Vn)
    Un_moved = F.normalize(Un + 5 * V, dim=-1)
    moved = compute_loss("tripletclip", s, U, V, Un_moved, Vn)
    torch.testing.assert_close(moved["real_anchor"], base["real_anchor"])
    assert not torch.allclose(moved["negative_anchor"], base["negative_anchor"])
    # Real and negative images never share a logit: the mixed second derivative d2L / dU dU' is zero.
    U_req = U.clone().requires_grad_(True)
    Un_req = Un.clone().requires_grad_(True)
    loss = compute_loss("tripletclip", s, U_req, V, Un_req, Vn)["loss"]
    (grad_u,) = torch.autograd.grad(loss, U_req, create_graph=True)
    (mixed,) = torch.autograd.grad(grad_u.sum(), Un_req, allow_unused=True)
    assert mixed is None or torch.count_nonzero(mixed) == 0
    # ...whereas in LaCLIP+HN they do (negative images are candidates for real captions there).
    U_req = U.clone().requires_grad_(True)
    Un_req = Un.clone().requires_grad_(True)
    loss = compute_loss("clip_hn", s, U_req, V, Un_req, Vn)["loss"]
    (grad_u,) = torch.autograd.grad(loss, U_req, create_graph=True)
    (mixed,) = torch.autograd.grad(grad_u.sum(), Un_req, allow_unused=True)
    assert mixed is not None and torch.count_nonzero(mixed) > 0


def test_plain_clip_matches_transformers_clip_loss():
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    U, V, _, _ = embeddings(3)
    s = torch.tensor(14.0, dtype=torch.float64)
    ours = compute_loss("clip", s, U, V)["loss"]
    theirs = image_text_contrastive_loss(s * V @ U.t())
    torch.testing.assert_close(ours, theirs)


def test_unknown_loss_type():
    U, V, Un, Vn = embeddings(4)
    with pytest.raises(ValueError, match="Unknown loss_type"):
        compute_loss("triplet", torch.tensor(1.0), U, V, Un, Vn)
