"""Negative images (and, when a dataset has none, positive images) from a diffusers text-to-image pipeline.

Any checkpoint that ``diffusers.AutoPipelineForText2Image`` loads works; the paper used ``stabilityai/sdxl-turbo``,
whose documented use is 1 to 4 denoising steps, guidance scale 0.0 and 512x512 pixels (the defaults here).

Each prompt comes with its own seed and gets its own ``torch.Generator``, so an image depends on its prompt and seed
only, not on the batch it was drawn in: any row can be regenerated alone (:meth:`ImageGenerator.generate` with that
row's prompt and seed) and gives the same picture, up to floating-point rounding: another batch size, or another
process whose kernels round differently, may move a rare pixel value by one.

Example:
    >>> generator = ImageGenerator.from_pretrained("stabilityai/sdxl-turbo", dtype="float16")  # doctest: +SKIP
    >>> images = generator.generate(["A dog to the right of the cat."], seeds=[1234])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.devices import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

DEFAULT_T2I = "stabilityai/sdxl-turbo"


def check_text_to_image(name_or_path: str | Path) -> None:
    """Raise a clear `ValueError` when ``name_or_path`` is not a diffusers pipeline (reads only model_index.json)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"{str(name_or_path)!r} is not a diffusers text-to-image pipeline folder (it has no model_index.json)."
                f" Give a folder saved with `pipeline.save_pretrained(...)` or a Hub id such as {DEFAULT_T2I!r}."
            )
        return
    from diffusers import DiffusionPipeline

    try:
        DiffusionPipeline.load_config(str(name_or_path))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Could not find the diffusers pipeline {str(name_or_path)!r} ({error}). Give a folder with a "
            f"model_index.json or a Hub id such as {DEFAULT_T2I!r} (downloaded once, or cached for offline use)."
        ) from error


@dataclass
class ImageGenerator:
    """A text-to-image pipeline with fixed settings, generating one image per (prompt, seed).

    Args:
        pipeline: a diffusers text-to-image pipeline (Stable Diffusion, SDXL, SDXL-turbo, ...).
        num_inference_steps: denoising steps (SDXL-turbo: 1 to 4).
        guidance_scale: classifier-free guidance (SDXL-turbo: 0.0, i.e. none).
        height, width: image size in pixels (SDXL-turbo: 512).
        batch_size: prompts per pipeline call.
    """

    pipeline: Any
    num_inference_steps: int = 1
    guidance_scale: float = 0.0
    height: int = 512
    width: int = 512
    batch_size: int = 8

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_T2I, dtype: str | None = None,
                        device: str | None = None, compile: bool = False, **settings: Any) -> "ImageGenerator":
        """Load a pipeline with ``AutoPipelineForText2Image.from_pretrained`` (safetensors weights).

        Args:
            name_or_path: Hub id or folder (default: the paper's SDXL-turbo).
            dtype: ``float32``, ``bfloat16``, ``float16`` (GPU only) or None for the checkpoint's own.
            device: ``cuda``, ``cpu``, ...; None picks a GPU when there is one.
            compile: compile the denoiser (``unet`` or ``transformer``) with `torch.compile` (GPU: faster after
                the first batches of each shape).
            **settings: the dataclass fields (``num_inference_steps``, ``guidance_scale``, ``height``, ...).
        """
        from diffusers import AutoPipelineForText2Image

        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        check_text_to_image(name_or_path)
        kwargs: dict[str, Any] = {"use_safetensors": True}
        if torch_dtype is not None:
            kwargs["torch_dtype"] = torch_dtype
        try:
            pipeline = AutoPipelineForText2Image.from_pretrained(str(name_or_path), **kwargs)
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(
                f"Could not load {str(name_or_path)!r} as a text-to-image pipeline: {error}. Give a diffusers "
                f"text-to-image checkpoint such as {DEFAULT_T2I!r}."
            ) from error
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        if compile:
            import torch

            for name in ("unet", "transformer"):
                if getattr(pipeline, name, None) is not None:
                    setattr(pipeline, name, torch.compile(getattr(pipeline, name)))
        return cls(pipeline, **settings)

    @property
    def device(self):
        return self.pipeline.device

    def _generators(self, seeds: Sequence[int]) -> list[Any]:
        import torch

        # CPU generators draw the same noise on every device, so a seed means the same image on CPU and GPU runs.
        return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Any]:
        """One PIL image per prompt, the ``i``-th drawn from ``seeds[i]``, in batches of ``batch_size``."""
        if len(prompts) != len(seeds):
            raise ValueError(f"Give one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds.")
        images: list[Any] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start : start + self.batch_size])
            result = self.pipeline(
                prompt=batch,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                height=self.height,
                width=self.width,
                generator=self._generators(seeds[start : start + self.batch_size]),
                output_type="pil",
            )
            images.extend(result.images)
        return images
