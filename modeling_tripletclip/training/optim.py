"""Optimizer and schedule, following open_clip's conventions and the paper's settings."""

from __future__ import annotations

import math

import torch
from transformers import get_scheduler


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight decay on matrices (weights of linear layers, embeddings); none on biases, norms, the
    logit scale and any other 1-d parameter. Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or "logit_scale" in name or "norm" in name or name.endswith(".bias"):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(model: torch.nn.Module, config) -> torch.optim.AdamW:
    groups = parameter_groups(model, config.weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError("No parameter is trainable: check --freeze / --lora settings.")
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon
    )


def create_scheduler(optimizer, config):
    name = "cosine" if config.lr_scheduler == "cosine" else "constant_with_warmup"
    return get_scheduler(
        name, optimizer, num_warmup_steps=config.lr_warmup_steps, num_training_steps=config.max_train_steps
    )


@torch.no_grad()
def clamp_logit_scale(model: torch.nn.Module, maximum: float) -> None:
    """Keep exp(logit_scale) <= ``maximum`` (open_clip clamps to 100 after every step)."""
    limit = math.log(maximum)
    for name, parameter in model.named_parameters():
        if name.endswith("logit_scale"):
            parameter.clamp_(0, limit)
