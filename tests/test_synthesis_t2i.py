"""Negative images through diffusers' AutoPipelineForText2Image, on a tiny random Stable Diffusion pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from test_synthesis_tiny_models import assert_same_picture, built, single_thread  # noqa: F401  (fixture)

from dataset_builders.synthesis.t2i import ImageGenerator, check_text_to_image

PROMPTS = ["a red cube on a blue table", "two brown horses standing in a field", "A dog to the left of the cat."]


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> ImageGenerator:
    return ImageGenerator.from_pretrained(built("sd", tmp_path_factory.getbasetemp()), num_inference_steps=2,
                                          height=32, width=32, batch_size=3)


def test_loads_through_auto_pipeline(generator):
    from diffusers import StableDiffusionPipeline

    assert isinstance(generator.pipeline, StableDiffusionPipeline)
    assert generator.guidance_scale == 0.0  # SDXL-turbo's documented setting is the default


def test_one_seed_per_row_regenerates_alone(generator):
    seeds = [11, 22, 33]
    batch = generator.generate(PROMPTS, seeds)
    assert [image.size for image in batch] == [(32, 32)] * 3
    # the same batch again: bit for bit
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(generator.generate(PROMPTS, seeds), batch))
    # any row, regenerated alone or in another batch, is the same picture
    assert_same_picture(generator.generate([PROMPTS[1]], [22])[0], batch[1])
    reordered = generator.generate([PROMPTS[2], PROMPTS[0]], [33, 11])
    assert_same_picture(reordered[0], batch[2])
    assert_same_picture(reordered[1], batch[0])
    # the seed matters
    other = generator.generate([PROMPTS[1]], [23])[0]
    assert np.abs(np.asarray(other).astype(int) - np.asarray(batch[1]).astype(int)).mean() > 5
    assert np.asarray(batch[0]).std() > 1  # a picture, not a blank


def test_batches_of_any_size(generator):
    generator.batch_size = 2
    try:
        images = generator.generate(PROMPTS, [1, 2, 3])
    finally:
        generator.batch_size = 3
    assert_same_picture(images[2], generator.generate(PROMPTS, [1, 2, 3])[2])
    with pytest.raises(ValueError, match="one seed per prompt"):
        generator.generate(PROMPTS, [1])


def test_not_a_text_to_image_pipeline(tmp_path_factory):
    with pytest.raises(ValueError, match="not a diffusers text-to-image pipeline.*model_index.json"):
        check_text_to_image(built("causal_lm", tmp_path_factory.getbasetemp()))
    with pytest.raises(ValueError, match="not a diffusers text-to-image pipeline"):
        ImageGenerator.from_pretrained(built("clip", tmp_path_factory.getbasetemp()))


def test_gpu_only_dtype_on_cpu_fails_before_loading(tmp_path_factory):
    with pytest.raises(ValueError, match="GPUs only"):
        ImageGenerator.from_pretrained(built("sd", tmp_path_factory.getbasetemp()), dtype="float16", device="cpu")
