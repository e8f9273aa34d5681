"""Microscopic random models for the synthesis tests, built from configs and saved to folders.

A causal LM (Llama architecture) with a byte-level BPE tokenizer trained offline and a chat template, a Stable
Diffusion pipeline (UNet, VAE, CLIP text encoder, trained tokenizer, scheduler), a CLIP model and a ViLT
question-answering model. The tests load them back through the same ``from_pretrained`` calls a real run uses.
Their outputs are nonsense; the tests check the machinery.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Microscopic models gain nothing from threads, and on a shared CPU the threads' contention costs 10-50x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

CORPUS = [
    "A dog to the left of the cat.",
    "A dog to the right of the cat.",
    "A person wearing a red helmet drives a motorbike on a dirt road.",
    "A person in a blue helmet rides a motorbike on a gravel path.",
    "a red cube on a blue table next to a small green ball",
    "two brown horses standing in a field under a cloudy sky",
    "Is there a dog? Is the cat black? Are there two horses?",
    "You are given the description of an image. Output: Input: Description: Questions:",
] * 20

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _train_bpe(vocab_size: int, special_tokens: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def build_causal_lm(path: Path, chat_template: bool = True) -> Path:
    """A ~20k-parameter Llama causal LM and its tokenizer, saved to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_train_bpe(400, specials), bos_token="<s>",
                                        eos_token="</s>", model_max_length=2048)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _trained_clip_tokenizer(vocab_size: int):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer().train_new_from_iterator(CORPUS, vocab_size=vocab_size)
    tokenizer.model_max_length = 32
    return tokenizer


def build_sd_pipeline(path: Path) -> Path:
    """A Stable Diffusion pipeline of microscopic random components rendering 32x32 images, saved to ``path``."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = _trained_clip_tokenizer(300)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(4, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=4, sample_size=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=32, projection_dim=16, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(path)
    return path


def build_sdxl_pipeline(path: Path) -> Path:
    """An SDXL pipeline (SDXL-turbo's architecture: two text encoders, pooled text embeddings and time ids added to
    the timestep embedding, an ancestral Euler scheduler with trailing timesteps) of microscopic random components,
    saved to ``path`` as `save_pretrained` writes any SDXL checkpoint."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _trained_clip_tokenizer(300)
    torch.manual_seed(0)
    text = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=32, projection_dim=16,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        # six time ids of 8 channels each, plus the second encoder's pooled, projected text embedding
        projection_class_embeddings_input_dim=6 * 8 + 16,
        cross_attention_dim=2 * 16,  # the two encoders' hidden states, concatenated
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(4, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=4, sample_size=32,
    )
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                timestep_spacing="trailing", steps_offset=1)
    pipeline = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)), tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )
    pipeline.save_pretrained(path)
    return path


def build_clip(path: Path) -> Path:
    """A tiny random CLIP model and processor (32x32 images), saved to ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tokenizer = _trained_clip_tokenizer(300)
    torch.manual_seed(0)
    config = CLIPConfig(
        projection_dim=16,
        text_config={"vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
    )
    CLIPModel(config).save_pretrained(path)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def build_vilt(path: Path) -> Path:
    """A tiny random ViLT visual-question-answering model with the answers "yes" and "no", saved to ``path``."""
    import torch
    from transformers import (
        BertTokenizerFast,
        ViltConfig,
        ViltForQuestionAnswering,
        ViltImageProcessorPil,
        ViltProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    words = sorted({w for line in CORPUS for w in line.lower().replace("?", " ?").replace(".", " .").split()})
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), model_max_length=40)
    torch.manual_seed(0)
    config = ViltConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, image_size=32, patch_size=8, max_position_embeddings=40,
                        num_labels=2, id2label={0: "yes", 1: "no"}, label2id={"yes": 0, "no": 1})
    model = ViltForQuestionAnswering(config)
    image_processor = ViltImageProcessorPil(size={"shortest_edge": 32}, size_divisor=8)
    processor = ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)
    # Centre the random "yes"-minus-"no" margin so that the answers are a mix of both, not always one.
    import numpy as np
    from PIL import Image

    images = [Image.fromarray(np.random.RandomState(i).randint(0, 255, (32, 32, 3), dtype=np.uint8)) for i in range(8)]
    inputs = processor(images=images, text=["is there a dog ?", "is the cat black ?"] * 4, padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        margins = (logits[:, 0] - logits[:, 1]).sort().values
        model.classifier[-1].bias[0] -= (margins[3] + margins[4]) / 2
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


_BUILT: dict[str, Path] = {}


def built(name: str, root: Path) -> Path:
    """The folder of tiny model ``name`` (``causal_lm``, ``plain_lm``, ``sd``, ``sdxl``, ``clip``, ``vilt``), built once per
    test session under ``root``."""
    if name not in _BUILT:
        builders = {"causal_lm": build_causal_lm, "sd": build_sd_pipeline, "sdxl": build_sdxl_pipeline,
                    "clip": build_clip, "vilt": build_vilt,
                    "plain_lm": lambda path: build_causal_lm(path, chat_template=False)}
        _BUILT[name] = builders[name](root / name)
    return _BUILT[name]


def assert_same_picture(a, b) -> None:
    """The same rendered picture: equal up to floating-point rounding between batch sizes (a pixel value off by
    one here and there), which is all that drawing a row alone instead of in a batch may change."""
    import numpy as np

    difference = np.abs(np.asarray(a.convert("RGB")).astype(int) - np.asarray(b.convert("RGB")).astype(int))
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01, (difference.max(), (difference > 0).mean())
