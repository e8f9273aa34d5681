"""Two CPU processes (gloo) with B rows each compute the loss and gradients of one process with 2B rows."""

from __future__ import annotations

import itertools
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from modeling_tripletclip.losses import Gather, compute_loss

LOSS_TYPES = ("clip", "negclip", "tripletclip", "clip_hn", "negative_images")
WORLD, B, D = 2, 3, 6
#: Without CyCLIP's terms, and with both (unequal weights, so a swapped term shows).
CYCLIP = {"plain": {}, "cyclip": {"cyclip_in_modal_weight": 0.25, "cyclip_cross_modal_weight": 0.5}}


def full_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(WORLD * B, D, generator=generator, dtype=torch.float64), dim=-1) for _ in range(4)]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        scale = torch.tensor(12.0, dtype=torch.float64)
        results = {}
        for loss_type, local_loss, cyclip in itertools.product(LOSS_TYPES, (False, True), CYCLIP):
            local = [t[rank * B : (rank + 1) * B].clone().requires_grad_(True) for t in full_batch()]
            loss = compute_loss(loss_type, scale, *local, gather=Gather(rank, WORLD), local_loss=local_loss,
                                **CYCLIP[cyclip])["loss"]
            loss.backward()
            # The whole-batch loss: the global loss is the same on every rank; local losses average to it.
            total = loss.detach().clone()
            dist.all_reduce(total)
            results[(loss_type, local_loss, cyclip)] = {
                "loss": total / WORLD,
                "grads": [t.grad if t.grad is not None else torch.zeros_like(t) for t in local],
            }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("cyclip", list(CYCLIP))
@pytest.mark.parametrize("local_loss", [False, True], ids=["global", "local"])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_two_processes_equal_one_process_with_the_whole_batch(two_process_results, loss_type, local_loss, cyclip):
    scale = torch.tensor(12.0, dtype=torch.float64)
    single = [t.clone().requires_grad_(True) for t in full_batch()]
    expected = compute_loss(loss_type, scale, *single, **CYCLIP[cyclip])["loss"]
    expected.backward()
    for rank, results in enumerate(two_process_results):
        result = results[(loss_type, local_loss, cyclip)]
        torch.testing.assert_close(result["loss"], expected.detach(), rtol=1e-12, atol=1e-12)
        for name, got, whole in zip(("U", "V", "U'", "V'"), result["grads"], single):
            want = whole.grad[rank * B : (rank + 1) * B] if whole.grad is not None else torch.zeros(B, D)
            # The autograd all-gather sums each row's gradient over processes; data-parallel training then
            # averages over processes, which divides by the world size.
            torch.testing.assert_close(
                got / WORLD, want.to(got.dtype), rtol=1e-10, atol=1e-12, msg=f"rank {rank}, d loss / d {name}"
            )
