"""Loading a CLIP-like checkpoint and encoding images and captions for evaluation.

:class:`CLIPEncoder` turns images and captions into L2-normalised embeddings, encoding each *distinct* image and
caption once per run (embeddings are kept keyed by image identity and caption text), in batches, on the model's
device and dtype. Image decoding and preprocessing run in background threads so the model never waits on them.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .errors import EvaluationInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSource:
    """One image to encode.

    Attributes:
        key: identity of the image; two sources with the same key are the same image and are encoded once
            (a resolved file path, or a hash of the encoded bytes).
        name: how a person finds the image (a file name, or a row and column), used in messages.
        load: returns the image; may raise if the file cannot be decoded.
    """

    key: str
    name: str
    load: Callable[[], Image.Image]


def image_source_from_file(path: str | Path) -> ImageSource:
    """An :class:`ImageSource` for an image file, keyed by its resolved path."""
    path = Path(path)
    resolved = str(path.resolve())
    return ImageSource(key=f"file:{resolved}", name=str(path), load=lambda: Image.open(resolved))


def image_source_from_value(value, name: str) -> ImageSource:
    """An :class:`ImageSource` for a value of a ``datasets`` image column.

    Accepts the undecoded form (``{"bytes": ..., "path": ...}``, as returned with ``Image(decode=False)``), a file
    path string, or an already decoded PIL image. Encoded bytes are keyed by their SHA-1, so the same image stored in
    two rows is encoded once.
    """
    if isinstance(value, Image.Image):
        digest = hashlib.sha1(value.tobytes()).hexdigest()
        return ImageSource(key=f"pil:{value.mode}:{value.size}:{digest}", name=name, load=lambda: value)
    if isinstance(value, str):
        return image_source_from_file(value) if Path(value).exists() else _missing_source(name, value)
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        label = f"{name} ({path})" if path else name
        if data is not None:
            digest = hashlib.sha1(data).hexdigest()
            return ImageSource(key=f"sha1:{digest}", name=label, load=lambda: Image.open(io.BytesIO(data)))
        if path:
            return image_source_from_file(path) if Path(path).exists() else _missing_source(label, path)
    return _missing_source(name, repr(value)[:80])


def _missing_source(name: str, what: str) -> ImageSource:
    def fail():
        raise FileNotFoundError(f"no image data ({what})")

    return ImageSource(key=f"missing:{name}", name=name, load=fail)


def is_clip_like_config(config) -> bool:
    """Whether a model configuration has a text tower and a vision tower (CLIP, TripletCLIP, SigLIP, ...)."""
    return getattr(config, "text_config", None) is not None and getattr(config, "vision_config", None) is not None


def check_clip_like_model(model, name: str = "the model") -> None:
    """Raise :class:`EvaluationInputError` unless ``model`` has CLIP's encoding API."""
    missing = [m for m in ("get_text_features", "get_image_features") if not callable(getattr(model, m, None))]
    if missing:
        raise EvaluationInputError(
            f"{name} ({type(model).__name__}) is not a CLIP-like model: it has no {' or '.join(missing)}. "
            "Evaluate a TripletCLIP or CLIP checkpoint (any model with get_text_features and get_image_features); "
            "unwrap a distributed or accelerate-prepared model first (accelerator.unwrap_model(model))."
        )


def check_clip_like_checkpoint(name_or_path: str | Path, *, trust_remote_code: bool = False):
    """Load only the configuration of a checkpoint and check that it is CLIP-like (cheap: no weights are read).

    Returns:
        The configuration.

    Raises:
        EvaluationInputError: nothing loadable at ``name_or_path``, or a model without a text and a vision tower.
    """
    import modeling_tripletclip  # noqa: F401  (registers the tripletclip model type with the Auto classes)
    from transformers import AutoConfig

    name = str(name_or_path)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise EvaluationInputError(
            f"Cannot load a model configuration from {name!r} ({error}). Give a folder saved with save_pretrained "
            "(it holds config.json and model.safetensors) or the id of a CLIP-like model on the Hub."
        ) from error
    if not is_clip_like_config(config):
        raise EvaluationInputError(
            f"{name!r} is a {getattr(config, 'model_type', 'unknown')!r} checkpoint, not a CLIP-like model: evaluation "
            "needs a model with both a text and a vision tower (text_config and vision_config), such as a TripletCLIP "
            "or CLIP checkpoint."
        )
    return config


def load_model_and_processor(
    name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
):
    """Load a CLIP-like checkpoint and its processor for evaluation.

    TripletCLIP checkpoints load with this package's own code (importing it registers the ``tripletclip`` model
    type with the Auto classes); plain ``CLIPModel`` checkpoints load as they are, as baselines.

    Args:
        name_or_path: a folder written by ``save_pretrained`` or a Hub model id.
        device: where to run; defaults to CUDA when available, else CPU.
        dtype: ``torch.float32``, ``torch.bfloat16``, ``torch.float16``, their names, or ``None`` for the
            checkpoint's own dtype.
        trust_remote_code: allow code shipped with the checkpoint to run (needed only for models whose type this
            environment does not know).

    Returns:
        ``(model, processor)``, the model in eval mode on ``device``.

    Raises:
        EvaluationInputError: the path holds no loadable model, or the model is not CLIP-like.
    """
    from transformers import AutoModel, AutoProcessor

    name = str(name_or_path)
    check_clip_like_checkpoint(name, trust_remote_code=trust_remote_code)
    if isinstance(dtype, str):
        dtype = None if dtype == "auto" else getattr(torch, dtype)
    model = AutoModel.from_pretrained(name, trust_remote_code=trust_remote_code, dtype=dtype)
    check_clip_like_model(model, repr(name))
    try:
        processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise EvaluationInputError(
            f"{name!r} has no processor (tokenizer and image processor) that AutoProcessor can load ({error}). "
            "Save the processor next to the model with processor.save_pretrained(folder)."
        ) from error
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    return model, processor


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

    Attributes:
        num_images_encoded / num_texts_encoded: how many distinct images / captions went through the model.
        failed_images: ``{name: reason}`` of each image that could not be decoded (skipped, never retried).
    """

    def __init__(self, model, processor, *, batch_size: int = 64, num_workers: int | None = None, progress=True):
        check_clip_like_model(model)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.num_workers = max(1, num_workers if num_workers is not None else min(4, (torch.get_num_threads() or 1)))
        self.progress = progress
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        tokenizer = getattr(processor, "tokenizer", processor)
        limit = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
        self.max_text_length = min(x for x in (getattr(tokenizer, "model_max_length", None), limit, 10**6) if x)
        self._texts: dict[str, torch.Tensor] = {}
        self._images: dict[str, torch.Tensor] = {}
        self._failed_keys: dict[str, str] = {}
        self.failed_images: dict[str, str] = {}
        self.num_images_encoded = 0
        self.num_texts_encoded = 0
        self._dim: int | None = None

    def failure_reason(self, source: ImageSource) -> str | None:
        """Why ``source`` could not be decoded, or ``None`` if it was not a failure."""
        return self._failed_keys.get(source.key)

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
                    text=batch, padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
                )
                inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
                embeddings = _normalise(_projected(self.model.get_text_features(**inputs))).cpu()
                self._dim = embeddings.shape[-1]
                self._texts.update(zip(batch, embeddings))
                self.num_texts_encoded += len(batch)
                bar.update(len(batch))
        if not texts:
            return torch.empty(0, self.embedding_dim)
        return torch.stack([self._texts[t] for t in texts])

    # Images -------------------------------------------------------------------------------------------------------

    def _prepare_images(self, sources: Sequence[ImageSource]):
        """Decode and preprocess one batch (runs in a worker thread). Returns (keys, pixel_values, failures)."""
        loaded, failures = [], []
        for source in sources:
            try:
                loaded.append((source, source.load().convert("RGB")))
            except Exception as error:  # any decoding problem skips this image, counted and reported
                failures.append((source, f"{type(error).__name__}: {error}"))
        if not loaded:
            return [], None, failures
        try:
            pixel_values = self.processor(images=[image for _, image in loaded], return_tensors="pt")["pixel_values"]
            return [source.key for source, _ in loaded], pixel_values, failures
        except Exception:  # find the image(s) the processor cannot take, keep the others
            keys, rows = [], []
            for source, image in loaded:
                try:
                    rows.append(self.processor(images=[image], return_tensors="pt")["pixel_values"])
                    keys.append(source.key)
                except Exception as error:
                    failures.append((source, f"{type(error).__name__}: {error}"))
            return keys, (torch.cat(rows) if rows else None), failures

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
                for source, reason in failures:
                    self._failed_keys[source.key] = reason
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
        return out, ok
