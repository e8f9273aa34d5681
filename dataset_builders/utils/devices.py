"""Devices and dtypes: one policy for every model the package loads (trained, evaluated, generating or scoring).

- **Device**: as given (``cuda``, ``cuda:1``, ``cpu``, ``mps``, ...), else the first accelerator present, else CPU.
  Under ``accelerate launch`` pass the process's own device (``accelerator.device``).
- **Dtype**: ``float32``, ``bfloat16`` or ``float16`` (also ``fp32``, ``bf16``, ``fp16``, ``half``, or a
  ``torch.dtype``); ``auto`` or None keeps the checkpoint's own. ``float16`` is refused on a CPU before anything is
  loaded: CPU kernels for it are missing or silently upcast, so it only costs time; use ``bfloat16`` or ``float32``
  there.
"""

from __future__ import annotations

from typing import Any

DTYPE_NAMES = ("float32", "bfloat16", "float16")
_ALIASES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
            "float16": "float16", "fp16": "float16", "half": "float16"}


def resolve_device(device: Any = None) -> str:
    """``device`` as a string, or ``"cuda"`` when a GPU is visible (``"mps"`` on Apple silicon), else ``"cpu"``."""
    if device is not None and str(device):
        return str(device)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: Any, device: Any = "cpu"):
    """The `torch.dtype` for a name or dtype, None for ``auto``/None (the checkpoint's own).

    Raises:
        ValueError: an unknown name, or ``float16`` on a CPU device (before anything is loaded).
    """
    import torch

    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        name = _ALIASES.get(str(dtype).removeprefix("torch."))
        if name is None:
            raise ValueError(f"Unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)} (float16 on GPUs only) "
                             f"or auto.")
        resolved = getattr(torch, name)
    if resolved == torch.float16 and str(device).startswith("cpu"):
        raise ValueError(
            f"dtype {dtype!r} runs on GPUs only, and the device here is {str(device)!r}. Use --dtype float32 (or "
            f"bfloat16) on CPU, or run on a machine with a GPU."
        )
    return resolved


__all__ = ["DTYPE_NAMES", "resolve_device", "resolve_dtype"]
