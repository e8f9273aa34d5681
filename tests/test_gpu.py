"""The GPU path (`pytest -m gpu`, run by benchmarks/gpu_check.sh on a machine with a CUDA GPU).

Each test compares the GPU result with the same computation on the CPU; without a CUDA device they are skipped, as
they measure nothing there (the CPU path is what the rest of the suite tests).
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny
from test_model import NEGATIVES, TEXTS, batch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_forward_on_the_gpu_equals_the_cpu():
    model, processor = make_tiny()
    model.eval()
    inputs = batch(processor, TEXTS, NEGATIVES)
    with torch.no_grad():
        cpu = model(**inputs, return_loss=True)
        gpu = model.to("cuda")(**{k: v.to("cuda") for k, v in inputs.items()}, return_loss=True)
    torch.testing.assert_close(gpu.logits_per_image.cpu(), cpu.logits_per_image, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_training_step_on_the_gpu_follows_fp32():
    model, processor = make_tiny()
    model.to("cuda").train()
    inputs = {k: v.to("cuda") for k, v in batch(processor, TEXTS, NEGATIVES).items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = model(**inputs, return_loss=True).loss
    fp32 = model(**inputs, return_loss=True).loss
    assert torch.isfinite(bf16) and abs(bf16.item() - fp32.item()) < 0.05 * abs(fp32.item()) + 0.05
    bf16.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
