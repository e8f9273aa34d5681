"""Reduced decoding on real photographs, and the two halves of the image path (prepare per image, normalise per batch).

Reduced decoding (training's default) must stay within the documented bound of full decoding, which must equal the
image processor exactly; the normalisation that the trainer runs on the accelerator must equal the one on the CPU.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil

from dataset_builders.batches import TripletCollator
from dataset_builders.utils.images import REDUCED_DECODING_BOUND, ImageTransform, decode_image

from conftest import make_tiny

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg")


def _image_processor(size: int) -> CLIPImageProcessorPil:
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _photo_jpeg(test_data, name: str) -> bytes:
    """The photograph as a camera or a web crawl would store it: JPEG, quality 90, at its own size."""
    path = test_data / "images" / name
    if path.suffix == ".jpg":
        return path.read_bytes()
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [224, 112, 64])
def test_reduced_decoding_of_real_photos_stays_within_the_documented_bound(test_data, size):
    image_processor = _image_processor(size)
    exact, reduced = ImageTransform(image_processor), ImageTransform(image_processor, reduced=True)
    drafted = 0
    for name in PHOTOS:
        data = _photo_jpeg(test_data, name)
        original = Image.open(io.BytesIO(data)).size

        full, problem = exact.decode(data)
        assert problem is None and full.size == original  # the exact path decodes every pixel
        expected = image_processor(Image.open(io.BytesIO(data)).convert("RGB"), return_tensors="pt")["pixel_values"]
        exact_pixels = exact.prepare(full)
        torch.testing.assert_close(exact.pixel_values([exact_pixels]), expected, rtol=0, atol=0)

        small, problem = reduced.decode(data)
        assert problem is None
        if min(original) >= 2 * size:  # libjpeg decoded at 1/2, 1/4 or 1/8, never below the model's input
            drafted += 1
            assert small.size[0] < original[0] and min(small.size) >= size
        else:
            assert small.size == original
        reduced_pixels = reduced.prepare(small)
        assert reduced_pixels.shape == exact_pixels.shape == (size, size, 3)
        difference = np.abs(reduced_pixels.astype(int) - exact_pixels.astype(int))
        assert difference.max() <= REDUCED_DECODING_BOUND["max"], (name, difference.max())
        assert difference.mean() <= REDUCED_DECODING_BOUND["mean"], (name, difference.mean())
        if min(original) >= 2 * size:
            assert difference.mean() > 0.05  # the reduced path really decoded less
    assert drafted == {224: 1, 112: 5, 64: 5}[size]


@pytest.mark.parametrize("resample", [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])
def test_reduced_resizing_agrees_with_the_processors_filter_within_one_level(test_data, resample):
    """Without DCT scaling (PNG sources) only the resize differs: torch's antialiased kernels for bicubic and
    bilinear, Pillow on the centre crop's box for other filters; the same filter on the same pixels, at most one
    level apart. Downscaling photos and upscaling small images alike."""
    for size in (224, 96, 600):
        image_processor = _image_processor(size)
        image_processor.resample = resample
        exact, reduced = ImageTransform(image_processor), ImageTransform(image_processor, reduced=True)
        for name in ("chelsea.png", "coffee.png", "horse.png"):
            value = (test_data / "images" / name).read_bytes()
            full, _ = exact.decode(value)
            small, _ = reduced.decode(value)
            assert small.size == full.size  # not a JPEG: decoded fully either way
            expected = exact.prepare(full)
            torch.testing.assert_close(exact.pixel_values([expected]),
                                       image_processor(full, return_tensors="pt")["pixel_values"], rtol=0, atol=0)
            difference = np.abs(reduced.prepare(small).astype(int) - expected.astype(int))
            assert difference.max() <= 1 and difference.mean() < 0.02, (size, name, resample)


def test_small_jpegs_and_other_formats_are_decoded_fully():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    for fmt in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        decoded, problem = decode_image(buffer.getvalue(), target_size=224)  # 300 < 2 x 224: nothing to gain
        assert problem is None and decoded.size == (400, 300)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded, _ = decode_image(buffer.getvalue(), target_size=64)  # large, but only JPEG decoders can scale
    assert decoded.size == (400, 300)


def test_normalising_on_an_accelerator_gives_the_cpu_values_exactly(test_data):
    image_processor = _image_processor(64)
    transform = ImageTransform(image_processor)
    prepared = [transform.prepare(transform.decode((test_data / "images" / name).read_bytes())[0]) for name in PHOTOS]
    stacked = transform.stack(prepared)
    assert stacked.dtype == torch.uint8 and stacked.shape == (5, 64, 64, 3)
    on_cpu = transform.normalize(stacked)
    with_torch_only = transform._normalize_on_device(stacked)  # the accelerator's code path, run here on the CPU
    torch.testing.assert_close(with_torch_only, on_cpu, rtol=0, atol=0)
    images = [Image.fromarray(p) for p in prepared]
    torch.testing.assert_close(on_cpu, image_processor(images, return_tensors="pt")["pixel_values"], rtol=0, atol=0)
    assert transform.normalize(on_cpu) is on_cpu  # already normalised: unchanged


def test_collator_can_leave_normalising_to_the_training_step(test_data):
    _, processor = make_tiny()
    rows = [{"image": {"bytes": (test_data / "images" / name).read_bytes(), "path": None},
             "negative_image": {"bytes": (test_data / "images" / other).read_bytes(), "path": None},
             "caption": f"a photo number {i}", "negative_caption": f"a drawing number {i}"}
            for i, (name, other) in enumerate(zip(PHOTOS, PHOTOS[::-1]))]
    normalised = TripletCollator(processor)(rows)
    raw = TripletCollator(processor, normalize_images=False)(rows)
    assert raw["pixel_values"].dtype == torch.uint8 and raw["pixel_values"].shape[-1] == 3
    assert raw["pixel_values"].numel() == normalised["pixel_values"].numel()  # the same values, a byte each
    assert raw["pixel_values"].element_size() == 1 and normalised["pixel_values"].element_size() == 4
    finished = TripletCollator(processor, normalize_images=False).normalize(raw)
    assert finished.keys() == normalised.keys()
    for key in normalised:
        torch.testing.assert_close(finished[key], normalised[key], rtol=0, atol=0)


def test_truncated_captions_are_counted_from_the_one_tokenizer_call():
    _, processor = make_tiny()
    limit = processor.tokenizer.model_max_length
    long_caption = " ".join(["red circle"] * limit)
    rows = [{"image": Image.new("RGB", (40, 40), (i, 0, 0)), "caption": caption,
             "negative_caption": negative}
            for i, (caption, negative) in enumerate([("a red circle", long_caption), (long_caption, long_caption),
                                                     ("a blue square", "a red square")])]
    collator = TripletCollator(processor, negative_images=False)
    batch = collator(rows)
    texts = [r["caption"] for r in rows] + [r["negative_caption"] for r in rows]
    expected = sum(len(ids) > limit for ids in processor.tokenizer(texts, truncation=False)["input_ids"])
    assert collator.truncated == expected == 3
    assert batch["input_ids"].shape[1] == limit
    assert batch["input_ids"].dtype == torch.int64
