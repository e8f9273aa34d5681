"""Encoding images and captions with any CLIP-like model: the one encoder of evaluation, filtering and scoring.

:class:`CLIPEncoder` turns images and captions into L2-normalised embeddings, encoding each *distinct* image and
caption once per run (embeddings are kept keyed by image identity and caption text), in batches, on the model's
device and dtype. Images go through the same two steps as training data (`dataset_builders.utils.images`):
`ImageTransform.decode` and ``prepare`` per image in background threads, so the model never waits on them, and one
vectorised ``pixel_values`` per batch; an image that cannot be decoded is skipped and reported with its reason, never
fatal. By default images are decoded and processed exactly as the processor does; ``reduced_image_decoding=True``
trades a documented, small difference for speed.

    model, processor = load_model_and_processor("openai/clip-vit-base-patch32")
    encoder = CLIPEncoder(model, processor)
    images, ok = encoder.encode_images([image_source_from_file("cat.png")])
    texts = encoder.encode_texts(["a photo of a cat"])
    similarity = images @ texts.T
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dataset_builders.utils.images import UNDECODABLE, ImageTransform, decode_image

from .loading import check_clip_like_model

logger = logging.getLogger(__name__)

#: Dual encoders whose processors prescribe padding every caption to the model's text length (``padding="max_length"``).
MAX_LENGTH_PADDING_MODELS = ("siglip", "siglip2")


@dataclass(frozen=True)
class ImageSource:
    """One image to encode.

    Attributes:
        key: identity of the image; two sources with the same key are the same image and are encoded once
            (a resolved file path, or a hash of the encoded bytes).
        name: how a person finds the image (a file name, or a row and column), used in messages.
        value: what `dataset_builders.utils.images.decode_image` decodes (a path, bytes, a ``{"bytes", "path"}`` dict
            or a PIL image); None when there is no image.
    """

    key: str
    name: str
    value: Any

    def decode(self, transform: ImageTransform | None = None):
        """``(RGB image, None)`` or ``(None, problem)``; decoded as ``transform`` wants (full decoding without one)."""
        return transform.decode(self.value) if transform is not None else decode_image(self.value)


def image_source_from_file(path: str | Path) -> ImageSource:
    """An :class:`ImageSource` for an image file, keyed by its resolved path."""
    path = Path(path)
    resolved = str(path.resolve())
    return ImageSource(key=f"file:{resolved}", name=str(path), value=resolved)


def image_source_from_value(value, name: str) -> ImageSource:
    """An :class:`ImageSource` for a value of a ``datasets`` image column.

    Accepts the undecoded form (``{"bytes": ..., "path": ...}``, as returned with ``Image(decode=False)``), raw bytes,
    a file path string, or an already decoded PIL image. Encoded bytes are keyed by their SHA-1, so the same image
    stored in two rows is encoded once.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        digest = hashlib.sha1(value.tobytes()).hexdigest()
        return ImageSource(key=f"pil:{value.mode}:{value.size}:{digest}", name=name, value=value)
    if isinstance(value, (bytes, bytearray)):
        return ImageSource(key=f"sha1:{hashlib.sha1(value).hexdigest()}", name=name, value=bytes(value))
    if isinstance(value, str):
        return image_source_from_file(value) if Path(value).exists() else ImageSource(f"missing:{name}", name, None)
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        label = f"{name} ({path})" if path else name
        if data is not None:
            return ImageSource(key=f"sha1:{hashlib.sha1(data).hexdigest()}", name=label, value=data)
        if path and Path(path).exists():
            return image_source_from_file(path)
    return ImageSource(key=f"missing:{name}", name=name, value=None)


def _projected(output) -> torch.Tensor:
    """The projected embedding from ``get_*_features`` (an output object in transformers 5, a tensor before)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalise(embeddings: torch.Tensor) -> torch.Tensor:
    embeddings = embeddings.float()
    return embeddings / embeddings.norm(dim=-1, keepdim=True)


class CLIPEncoder:
    """Encodes images and captions with a CLIP-like model, each distinct one once.

    Embeddings are L2-normalised, float32, on the CPU; cosine similarity is a dot product of two of them.

    Args:
        model: a model with ``get_text_features`` and ``get_image_features`` (TripletCLIP, CLIP, ...).
        processor: its processor (tokenizer + image processor), e.g. from ``AutoProcessor``.
        batch_size: images or captions per forward pass.
        num_workers: threads that decode and preprocess images ahead of the model.
        progress: show tqdm progress bars.
        cache: keep every embedding for the encoder's lifetime, so an image or caption met again is not encoded again
            (evaluation); without it each call encodes what it is given (streams of millions of rows, as in synthesis).
        reduced_image_decoding: decode large JPEGs at a reduced scale and resize only the centre crop
            (`dataset_builders.utils.images.ImageTransform` with ``reduced=True``); off by default, so that scores
            are computed from exactly the processor's pixels.

    Attributes:
        num_images_encoded / num_texts_encoded: how many distinct images / captions went through the model.
        failed_images: ``{name: reason}`` of each image that could not be decoded (skipped, never retried).
    """

    def __init__(self, model, processor, *, batch_size: int = 64, num_workers: int | None = None, progress=True,
                 cache: bool = True, reduced_image_decoding: bool = False):
        check_clip_like_model(model)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.num_workers = max(1, num_workers if num_workers is not None else min(4, (torch.get_num_threads() or 1)))
        self.progress = progress
        self.cache = cache
        image_processor = getattr(processor, "image_processor", None)
        self.transform = ImageTransform(image_processor, reduced=reduced_image_decoding) if image_processor else None
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        tokenizer = getattr(processor, "tokenizer", processor)
        limit = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
        self.max_text_length = min(x for x in (getattr(tokenizer, "model_max_length", None), limit, 10**6) if x)
        # SigLIP's text tower was trained on captions padded to its full length and pools the last position, so
        # its processors prescribe padding="max_length"; CLIP pools at the end-of-text token and pads to the batch.
        model_type = getattr(model.config, "model_type", "")
        self.text_padding = "max_length" if model_type in MAX_LENGTH_PADDING_MODELS else True
        self._texts: dict[str, torch.Tensor] = {}
        self._images: dict[str, torch.Tensor] = {}
        self._failed_keys: dict[str, str] = {}
        self._failed_kinds: dict[str, str] = {}
        self.failed_images: dict[str, str] = {}
        self.num_images_encoded = 0
        self.num_texts_encoded = 0
        self._dim: int | None = None

    def failure_reason(self, source: ImageSource) -> str | None:
        """Why ``source`` could not be decoded, or ``None`` if it was not a failure."""
        return self._failed_keys.get(source.key)

    def failure_kind(self, source: ImageSource) -> str | None:
        """The kind of failure (`dataset_builders.utils.images.PROBLEMS`: missing, undecodable, too large), or None."""
        return self._failed_kinds.get(source.key)

    @property
    def embedding_dim(self) -> int:
        """Size of the embeddings (known from the first encoded batch, else from the configuration)."""
        if self._dim is None:
            config = self.model.config
            self._dim = int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)
        return self._dim

    # Texts --------------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], *, progress: bool | None = None, desc: str = "Encoding captions"):
        """Embeddings of ``texts``, in order: a float32 tensor of shape `(len(texts), embedding_dim)`."""
        texts = [str(t) for t in texts]
        new = list(dict.fromkeys(t for t in texts if t not in self._texts))
        show = self.progress if progress is None else progress
        with tqdm(total=len(new), desc=desc, unit="caption", disable=not show or not new) as bar:
            for start in range(0, len(new), self.batch_size):
                batch = new[start : start + self.batch_size]
                inputs = self.processor(
                    text=batch, padding=self.text_padding, truncation=True, max_length=self.max_text_length,
                    return_tensors="pt",
                )
                inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
                embeddings = _normalise(_projected(self.model.get_text_features(**inputs))).cpu()
                self._dim = embeddings.shape[-1]
                self._texts.update(zip(batch, embeddings))
                self.num_texts_encoded += len(batch)
                bar.update(len(batch))
        if not texts:
            return torch.empty(0, self.embedding_dim)
        out = torch.stack([self._texts[t] for t in texts])
        if not self.cache:
            self._texts.clear()
        return out

    # Images -------------------------------------------------------------------------------------------------------

    def _prepare_images(self, sources: Sequence[ImageSource]):
        """Decode and preprocess one batch (runs in a worker thread). Returns (keys, pixel_values, failures)."""
        loaded, failures = [], []
        for source in sources:
            image, problem = source.decode(self.transform)
            if image is None:  # skipped, counted and reported
                failures.append((source, problem.explain(), str(problem)))
            else:
                loaded.append((source, self.transform.prepare(image) if self.transform else image))
        if not loaded:
            return [], None, failures
        try:
            pixel_values = self._pixel_values([image for _, image in loaded])
            return [source.key for source, _ in loaded], pixel_values, failures
        except Exception:  # find the image(s) the processor cannot take, keep the others
            keys, rows = [], []
            for source, image in loaded:
                try:
                    rows.append(self._pixel_values([image]))
                    keys.append(source.key)
                except Exception as error:
                    failures.append((source, f"{type(error).__name__}: {error}", UNDECODABLE))
            return keys, (torch.cat(rows) if rows else None), failures

    def _pixel_values(self, prepared: list) -> torch.Tensor:
        if self.transform is not None:
            return self.transform.pixel_values(prepared)
        return self.processor(images=prepared, return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def encode_images(
        self, sources: Sequence[ImageSource], *, progress: bool | None = None, desc: str = "Encoding images"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the images of ``sources``, in order.

        Returns:
            ``(embeddings, ok)``: float32 tensor of shape `(len(sources), embedding_dim)` and a boolean tensor of
            shape `(len(sources),)`, ``False`` where the image could not be decoded (its row is NaN).
        """
        pending = {}
        for source in sources:
            if source.key not in self._images and source.key not in self._failed_keys:
                pending.setdefault(source.key, source)
        new = list(pending.values())
        batches = [new[i : i + self.batch_size] for i in range(0, len(new), self.batch_size)]
        show = self.progress if progress is None else progress
        with (
            tqdm(total=len(new), desc=desc, unit="image", disable=not show or not new) as bar,
            ThreadPoolExecutor(max_workers=self.num_workers) as pool,
        ):
            in_flight: deque = deque()
            next_batch = 0
            while next_batch < len(batches) or in_flight:
                while next_batch < len(batches) and len(in_flight) < self.num_workers + 1:
                    in_flight.append(pool.submit(self._prepare_images, batches[next_batch]))
                    next_batch += 1
                keys, pixel_values, failures = in_flight.popleft().result()
                for source, reason, kind in failures:
                    self._failed_keys[source.key] = reason
                    self._failed_kinds[source.key] = kind
                    self.failed_images[source.name] = reason
                    logger.warning("Skipping image %s: it could not be decoded (%s).", source.name, reason)
                if pixel_values is not None:
                    pixel_values = pixel_values.to(self.device, self.dtype)
                    embeddings = _normalise(_projected(self.model.get_image_features(pixel_values=pixel_values)))
                    self._dim = embeddings.shape[-1]
                    self._images.update(zip(keys, embeddings.cpu()))
                    self.num_images_encoded += len(keys)
                bar.update(len(keys) + len(failures))
        out = torch.full((len(sources), self.embedding_dim), float("nan"))
        ok = torch.zeros(len(sources), dtype=torch.bool)
        for row, source in enumerate(sources):
            embedding = self._images.get(source.key)
            if embedding is not None:
                out[row] = embedding
                ok[row] = True
        if not self.cache:
            self._images.clear()
            self._failed_keys.clear()
            self._failed_kinds.clear()
        return out, ok

    def pair_scores(self, images: Sequence[Any], texts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity of ``images[i]`` with ``texts[i]`` for every ``i`` (image values as
        :func:`image_source_from_value` takes them); NaN where an image could not be decoded. Shape `(n,)`."""
        if len(images) != len(texts):
            raise ValueError(f"Give one text per image: {len(images)} images, {len(texts)} texts.")
        sources = [image_source_from_value(image, f"image {i}") for i, image in enumerate(images)]
        image_embeddings, _ = self.encode_images(sources, progress=False)
        text_embeddings = self.encode_texts(list(texts), progress=False)
        return (image_embeddings * text_embeddings).sum(-1)
