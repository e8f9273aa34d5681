"""`tripletclip convert-official`: the official release's two towers -> one TripletCLIP checkpoint.

Tiny folders in the official layout (``text-encoder/`` + ``vision-encoder/``, config.json + model.safetensors) are
built from a tiny CLIP in the two namings the official weights most plausibly use: transformers'
``CLIP{Text,Vision}ModelWithProjection`` under a ``model.`` prefix, and open_clip's (fused q/k/v, ``(width, dim)``
projections). The converted model must give the source model's embeddings exactly, and agree with an independent
open_clip-style forward pass written here from the open_clip conventions.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModel, CLIPModel, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

from conftest import make_tiny
from modeling_tripletclip import TripletCLIPModel
from modeling_tripletclip.cli import main
from modeling_tripletclip.hub.convert import OfficialCheckpointError, convert_official, official_loss_type

TEXTS = ["a red circle to the left of a blue square", "a photo of a cat", "two green triangles above a yellow star"]


@pytest.fixture(scope="module")
def tiny():
    model, processor = make_tiny(seed=3)
    model.eval()
    return model, processor


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory, tiny):
    path = tmp_path_factory.mktemp("processor")
    tiny[1].save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def inputs(tiny):
    _, processor = tiny
    generator = torch.Generator().manual_seed(0)
    images = [Image.fromarray((torch.rand(40, 36, 3, generator=generator) * 255).byte().numpy()) for _ in range(2)]
    return processor(text=TEXTS, images=images, return_tensors="pt", padding=True)


def tower_configs(model):
    text, vision = model.config.text_config, model.config.vision_config
    text_config = {
        "model_type": "clip_custom_text_model",
        "hidden_size": text.hidden_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "max_position_embeddings": text.max_position_embeddings,
        "hidden_act": "quick_gelu",
        "projection_dim": model.config.projection_dim,
    }
    vision_config = {
        "model_type": "clip_custom_vision_model",
        "vision_cfg": {"width": vision.hidden_size, "layers": vision.num_hidden_layers,
                       "heads": vision.num_attention_heads, "patch_size": vision.patch_size},
        "quick_gelu": True,
        "embed_dim": model.config.projection_dim,
    }
    return text_config, vision_config


def hf_towers(model):
    """transformers' CLIPTextModelWithProjection / CLIPVisionModelWithProjection holding the tiny model's weights."""
    state = model.state_dict()
    text_config = model.config.text_config.__class__(**{**model.config.text_config.to_dict(),
                                                        "projection_dim": model.config.projection_dim})
    vision_config = model.config.vision_config.__class__(**{**model.config.vision_config.to_dict(),
                                                            "projection_dim": model.config.projection_dim})
    text = CLIPTextModelWithProjection(text_config).eval()
    text.load_state_dict({k: v for k, v in state.items() if k.startswith(("text_model.", "text_projection."))})
    vision = CLIPVisionModelWithProjection(vision_config).eval()
    vision.load_state_dict({k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))})
    return text, vision


def open_clip_state(model) -> tuple[dict, dict]:
    """The tiny model's weights renamed as open_clip stores them: fused q/k/v, (width, dim) projections."""
    state = model.state_dict()

    def blocks(source_prefix, target_prefix, layers):
        out = {}
        for i in range(layers):
            s, t = f"{source_prefix}{i}.", f"{target_prefix}{i}."
            out[f"{t}attn.in_proj_weight"] = torch.cat([state[f"{s}self_attn.{p}_proj.weight"] for p in "qkv"])
            out[f"{t}attn.in_proj_bias"] = torch.cat([state[f"{s}self_attn.{p}_proj.bias"] for p in "qkv"])
            for p in ("weight", "bias"):
                out[f"{t}attn.out_proj.{p}"] = state[f"{s}self_attn.out_proj.{p}"]
                out[f"{t}ln_1.{p}"] = state[f"{s}layer_norm1.{p}"]
                out[f"{t}ln_2.{p}"] = state[f"{s}layer_norm2.{p}"]
                out[f"{t}mlp.c_fc.{p}"] = state[f"{s}mlp.fc1.{p}"]
                out[f"{t}mlp.c_proj.{p}"] = state[f"{s}mlp.fc2.{p}"]
        return out

    text = {
        "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": state["text_model.final_layer_norm.weight"],
        "ln_final.bias": state["text_model.final_layer_norm.bias"],
        "text_projection": state["text_projection.weight"].t(),
        "logit_scale": torch.tensor(math.log(1 / 0.07)),
        **blocks("text_model.encoder.layers.", "transformer.resblocks.", model.config.text_config.num_hidden_layers),
    }
    vision = {
        "visual.conv1.weight": state["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": state["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": state["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": state["vision_model.pre_layrnorm.weight"],
        "visual.ln_pre.bias": state["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": state["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": state["vision_model.post_layernorm.bias"],
        "visual.proj": state["visual_projection.weight"].t(),
        **blocks("vision_model.encoder.layers.", "visual.transformer.resblocks.",
                 model.config.vision_config.num_hidden_layers),
    }
    return {k: v.contiguous().clone() for k, v in text.items()}, {k: v.contiguous().clone() for k, v in vision.items()}


def write_official(root, text_state, vision_state, text_config, vision_config):
    for sub, state, config in (("text-encoder", text_state, text_config), ("vision-encoder", vision_state, vision_config)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, root / sub / "model.safetensors")
        (root / sub / "config.json").write_text(json.dumps(config))
        (root / sub / "utils.py").write_text("raise RuntimeError('the converter must never run release code')\n")
    return root


@pytest.fixture(scope="module")
def hf_layout(tmp_path_factory, tiny):
    model, _ = tiny
    text, vision = hf_towers(model)
    root = tmp_path_factory.mktemp("official-hf") / "CC3M_NegCLIP_ViTB12"
    return write_official(
        root,
        {f"model.{k}": v for k, v in text.state_dict().items()},
        {f"model.{k}": v for k, v in vision.state_dict().items()},
        *tower_configs(model),
    )


@pytest.fixture(scope="module")
def open_clip_layout(tmp_path_factory, tiny):
    model, _ = tiny
    text, vision = open_clip_state(model)
    root = tmp_path_factory.mktemp("official-oc") / "CC12M_TripletCLIP_ViTB12"
    return write_official(root, text, vision, *tower_configs(model))


# ------------------------------------------------------------------------------------------------ an open_clip forward


def _layer_norm(x, state, name):
    return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)


def _block(x, state, name, heads, mask=None):
    """A pre-norm residual block as open_clip writes it (nn.MultiheadAttention with packed in_proj, QuickGELU MLP)."""
    batch, length, width = x.shape
    h = _layer_norm(x, state, f"{name}.ln_1")
    q, k, v = (h @ state[f"{name}.attn.in_proj_weight"].t() + state[f"{name}.attn.in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)
    if mask is not None:
        scores = scores + mask
    attended = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, width)
    x = x + attended @ state[f"{name}.attn.out_proj.weight"].t() + state[f"{name}.attn.out_proj.bias"]
    h = _layer_norm(x, state, f"{name}.ln_2") @ state[f"{name}.mlp.c_fc.weight"].t() + state[f"{name}.mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ state[f"{name}.mlp.c_proj.weight"].t() + state[f"{name}.mlp.c_proj.bias"]


def open_clip_text_features(state, input_ids, eos_token_id, heads, layers):
    length = input_ids.shape[1]
    x = state["token_embedding.weight"][input_ids] + state["positional_embedding"][:length]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for i in range(layers):
        x = _block(x, state, f"transformer.resblocks.{i}", heads, mask)
    x = _layer_norm(x, state, "ln_final")
    pooled = x[torch.arange(x.shape[0]), (input_ids == eos_token_id).int().argmax(dim=-1)]
    return pooled @ state["text_projection"]


def open_clip_image_features(state, pixel_values, heads, layers):
    patches = F.conv2d(pixel_values, state["visual.conv1.weight"], stride=state["visual.conv1.weight"].shape[-1])
    x = patches.flatten(2).transpose(1, 2)
    cls = state["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + state["visual.positional_embedding"]
    x = _layer_norm(x, state, "visual.ln_pre")
    for i in range(layers):
        x = _block(x, state, f"visual.transformer.resblocks.{i}", heads)
    return _layer_norm(x[:, 0], state, "visual.ln_post") @ state["visual.proj"]


# ------------------------------------------------------------------------------------------------ tests


def features(model, inputs):
    with torch.no_grad():
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        image = model.get_image_features(pixel_values=inputs["pixel_values"])
    return text.pooler_output, image.pooler_output


def test_transformers_naming_under_a_prefix_converts_to_identical_embeddings(
    hf_layout, processor_dir, tiny, inputs, tmp_path
):
    model, _ = tiny
    out, text_mapping, vision_mapping = convert_official(hf_layout, tmp_path / "converted", processor=processor_dir)
    assert (text_mapping.naming, text_mapping.prefix) == ("transformers", "model.text_model.")
    assert (vision_mapping.naming, vision_mapping.prefix) == ("transformers", "model.vision_model.")
    assert type(AutoModel.from_pretrained(out)) is CLIPModel  # the default form: a plain CLIP checkpoint
    converted = TripletCLIPModel.from_pretrained(out).eval()  # its settings read back from config.json
    assert converted.config.loss_type == "negclip"  # from the name CC3M_NegCLIP_ViTB12
    text_tower, vision_tower = hf_towers(model)
    with torch.no_grad():
        source_text = text_tower(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).text_embeds
        source_image = vision_tower(pixel_values=inputs["pixel_values"]).image_embeds
    text, image = features(converted, inputs)
    assert torch.equal(text, source_text)
    assert torch.equal(image, source_image)
    assert converted.logit_scale.exp().item() == pytest.approx(100.0)


def test_open_clip_naming_converts_to_identical_embeddings(open_clip_layout, processor_dir, tiny, inputs, tmp_path):
    model, processor = tiny
    assert main(["convert-official", "--model_name_or_path", str(open_clip_layout), "--output_dir", str(tmp_path / "converted"),
                 "--processor", str(processor_dir)]) == 0
    converted = TripletCLIPModel.from_pretrained(tmp_path / "converted").eval()
    assert converted.config.loss_type == "tripletclip"
    assert converted.config.text_config.hidden_act == "quick_gelu"
    # Identical to the model whose weights were rearranged into open_clip's names ...
    text, image = features(converted, inputs)
    reference_text, reference_image = features(model, inputs)
    assert torch.equal(text, reference_text)
    assert torch.equal(image, reference_image)
    # ... and to an independent open_clip-style forward over the open_clip tensors themselves.
    text_state, vision_state = open_clip_state(model)
    config = model.config
    expected_text = open_clip_text_features(text_state, inputs["input_ids"], processor.tokenizer.eos_token_id,
                                            config.text_config.num_attention_heads, config.text_config.num_hidden_layers)
    expected_image = open_clip_image_features(vision_state, inputs["pixel_values"],
                                              config.vision_config.num_attention_heads,
                                              config.vision_config.num_hidden_layers)
    torch.testing.assert_close(text, expected_text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(image, expected_image, atol=1e-5, rtol=1e-5)
    # The official evaluation's temperature: probabilities are softmax(100 * cosine).
    with torch.no_grad():
        logits = converted(**inputs).logits_per_image
    cosine = F.normalize(expected_image, dim=-1) @ F.normalize(expected_text, dim=-1).t()
    torch.testing.assert_close(logits, 100 * cosine, atol=1e-3, rtol=1e-4)
    # The card documents the conversion and the logit scale, and its YAML round-trips.
    card = ModelCard.load(tmp_path / "converted" / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "zero-shot-image-classification"
    assert "logit_scale = ln 100" in card.text and "open_clip naming" in card.text
    assert "stores a logit scale of 14.29" in card.text  # 1 / 0.07, recognised but not used
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()


def _convert_expecting(layout_dir, processor_dir, out, *fragments):
    with pytest.raises(OfficialCheckpointError) as caught:
        convert_official(layout_dir, out, processor=processor_dir)
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))
    assert not out.exists()  # nothing written
    return str(caught.value)


def test_renamed_missing_or_extra_tensors_are_refused_by_name(tiny, processor_dir, tmp_path):
    model, _ = tiny
    text, vision = open_clip_state(model)
    configs = tower_configs(model)

    renamed = dict(text)
    renamed["ln_finale.weight"] = renamed.pop("ln_final.weight")
    root = write_official(tmp_path / "renamed", renamed, vision, *configs)
    message = _convert_expecting(root, processor_dir, tmp_path / "out1", "ln_final.weight", "ln_finale.weight",
                                 "missing", "unmatched")
    assert "text-encoder" in message

    missing = dict(vision)
    del missing["visual.transformer.resblocks.1.mlp.c_proj.bias"]
    root = write_official(tmp_path / "missing", text, missing, *configs)
    _convert_expecting(root, processor_dir, tmp_path / "out2", "visual.transformer.resblocks.1.mlp.c_proj.bias",
                       "vision-encoder")

    hf_text, hf_vision = hf_towers(model)
    extra = {f"model.{k}": v for k, v in hf_text.state_dict().items()}
    extra["model.text_model.adapter.weight"] = torch.zeros(4, 4)
    root = write_official(tmp_path / "extra", extra, {f"model.{k}": v for k, v in hf_vision.state_dict().items()},
                          *configs)
    _convert_expecting(root, processor_dir, tmp_path / "out3", "model.text_model.adapter.weight", "unmatched")

    misshaped = dict(text)
    misshaped["transformer.resblocks.0.attn.in_proj_bias"] = torch.zeros(5)
    root = write_official(tmp_path / "misshaped", misshaped, vision, *configs)
    _convert_expecting(root, processor_dir, tmp_path / "out4", "transformer.resblocks.0.attn.in_proj_bias", "(96,)")


def test_layouts_that_are_not_official_checkpoints(tmp_path, processor_dir, open_clip_layout):
    with pytest.raises(OfficialCheckpointError, match="has no text-encoder/ folder"):
        convert_official(tmp_path, tmp_path / "out", processor=processor_dir)
    (tmp_path / "pickled" / "text-encoder").mkdir(parents=True)
    (tmp_path / "pickled" / "vision-encoder").mkdir()
    torch.save({}, tmp_path / "pickled" / "text-encoder" / "pytorch_model.bin")
    with pytest.raises(OfficialCheckpointError, match="no .safetensors weights.*pytorch_model.bin"):
        convert_official(tmp_path / "pickled", tmp_path / "out", processor=processor_dir)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(OfficialCheckpointError, match="not empty"):
        convert_official(open_clip_layout, occupied, processor=processor_dir)
    with pytest.raises(OfficialCheckpointError, match="could not be downloaded"):
        convert_official("TripletCLIP/CC3M_TripletCLIP_ViTB12", tmp_path / "out", processor=processor_dir)
    # Offline, the default processor (openai/clip-vit-base-patch32) cannot be fetched: say how to give one.
    with pytest.raises(OfficialCheckpointError, match="Cannot load the processor 'openai/clip-vit-base-patch32'"):
        convert_official(open_clip_layout, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_objective_is_read_from_the_official_names():
    assert official_loss_type("TripletCLIP/CC3M_TripletCLIP_ViTB12") == "tripletclip"
    assert official_loss_type("TripletCLIP/CC12M_NegCLIPPP_ViTB12") == "negclip"
    assert official_loss_type("TripletCLIP/CC3M_LaCLIP_Real_HN_ViTB12") == "clip_hn"
    assert official_loss_type("TripletCLIP/CC12M_LaCLIP_ViTB12") == "clip"
