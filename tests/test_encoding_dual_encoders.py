"""Any transformers dual encoder is encoded as its own processor prescribes: SigLIP pads every caption to its full
text length (it pools the last position), CLIP to the longest caption of the batch."""

from __future__ import annotations

import torch
from transformers import SiglipConfig, SiglipModel, SiglipProcessor

from conftest import CORPUS
from modeling_tripletclip.encoding import CLIPEncoder
from modeling_tripletclip.presets import train_tokenizer

TEXTS = ["a photo of a cat", "two green triangles above a yellow star", "a rocket"]
LENGTH = 64


def tiny_siglip():
    tokenizer = train_tokenizer(CORPUS, vocab_size=300, model_max_length=LENGTH)
    tokenizer.model_input_names = ["input_ids"]  # as SigLIP's tokenizers: no attention mask, the model sees the pads
    config = SiglipConfig(
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=LENGTH, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, eos_token_id=None),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
    )
    torch.manual_seed(0)
    from transformers import SiglipImageProcessor

    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer)
    return SiglipModel(config).eval(), processor


def test_siglip_captions_are_padded_to_the_full_length_as_its_processor_prescribes():
    model, processor = tiny_siglip()
    encoder = CLIPEncoder(model, processor, progress=False)
    got = encoder.encode_texts(TEXTS)
    inputs = processor(text=TEXTS, padding="max_length", truncation=True, max_length=LENGTH, return_tensors="pt")
    assert set(inputs) == {"input_ids"}
    with torch.no_grad():
        expected = model.get_text_features(**inputs).pooler_output
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # Padding to the batch (as for CLIP) would give other embeddings: the padding matters for SigLIP.
    batch = processor(text=TEXTS, padding=True, truncation=True, max_length=LENGTH, return_tensors="pt")
    with torch.no_grad():
        other = model.get_text_features(input_ids=batch["input_ids"]).pooler_output
    assert (other / other.norm(dim=-1, keepdim=True) - expected).abs().max() > 1e-3


def test_clip_captions_are_padded_to_the_batch(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    encoder = CLIPEncoder(model, processor, progress=False)
    assert encoder.text_padding is True
    got = encoder.encode_texts(TEXTS)
    inputs = processor(text=TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.get_text_features(**inputs).pooler_output
    torch.testing.assert_close(got, expected / expected.norm(dim=-1, keepdim=True), rtol=0, atol=1e-6)
