"""TripletCLIPModel: CLIP equivalence, the negatives path, Auto classes, remote code, pipeline, conversion, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoProcessor, CLIPModel, pipeline

from conftest import make_tiny
from modeling_tripletclip import TripletCLIPConfig, TripletCLIPModel, TripletCLIPOutput
from modeling_tripletclip.losses import compute_loss


def batch(processor, texts, negatives=None, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = [
        Image.fromarray((torch.rand(size + 8, size, 3, generator=generator) * 255).byte().numpy()) for _ in texts
    ]
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    if negatives is not None:
        neg_images = [img.transpose(Image.FLIP_LEFT_RIGHT) for img in images]
        neg = processor(text=negatives, images=neg_images, return_tensors="pt", padding=True)
        inputs["negative_input_ids"] = neg["input_ids"]
        inputs["negative_attention_mask"] = neg["attention_mask"]
        inputs["negative_pixel_values"] = neg["pixel_values"]
    return inputs


TEXTS = ["a red circle to the left of a blue square", "a photo of a cat", "a photo of a dog"]
NEGATIVES = ["a blue circle to the left of a red square", "a photo of a dog", "two photos of a cat above a dog"]


def test_without_negatives_equals_transformers_clip(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    clip = CLIPModel(model.config)  # CLIPModel accepts the (sub)config: same architecture
    clip.load_state_dict(model.state_dict())
    clip.eval()
    inputs = batch(processor, TEXTS)
    with torch.no_grad():
        ours = model(**inputs, return_loss=True, loss_type="clip")
        theirs = clip(**inputs, return_loss=True)
    assert isinstance(ours, TripletCLIPOutput)
    for field in ("text_embeds", "image_embeds", "logits_per_image", "logits_per_text", "loss"):
        torch.testing.assert_close(getattr(ours, field), getattr(theirs, field), rtol=0, atol=1e-6, msg=field)


def test_without_negatives_default_objective_falls_back_to_clip_loss(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    inputs = batch(processor, TEXTS)
    with torch.no_grad():
        default = model(**inputs, return_loss=True)  # config.loss_type == "tripletclip", no negatives given
        plain = model(**inputs, return_loss=True, loss_type="clip")
    torch.testing.assert_close(default.loss, plain.loss)


@pytest.mark.parametrize("loss_type", ["negclip", "tripletclip", "clip_hn", "negative_images"])
def test_with_negatives_one_pass_per_tower_and_the_right_loss(tiny_model_and_processor, loss_type):
    model, processor = tiny_model_and_processor
    inputs = batch(processor, TEXTS, NEGATIVES)
    calls = {"vision": 0, "text": 0}
    hooks = [
        model.vision_model.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1)),
        model.text_model.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1)),
    ]
    try:
        with torch.no_grad():
            out = model(**inputs, return_loss=True, loss_type=loss_type)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"vision": 1, "text": 1}
    # Independently: encode each part separately with the public API, then apply the loss.
    with torch.no_grad():
        def norm(x):
            return x / x.norm(dim=-1, keepdim=True)

        u = norm(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output)
        un = norm(model.get_image_features(pixel_values=inputs["negative_pixel_values"]).pooler_output)
        v = norm(model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output)
        vn = norm(
            model.get_text_features(
                input_ids=inputs["negative_input_ids"], attention_mask=inputs["negative_attention_mask"]
            ).pooler_output
        )
        expected = compute_loss(loss_type, model.logit_scale.exp(), u, v, un, vn)
    torch.testing.assert_close(out.image_embeds, u, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.negative_text_embeds, vn, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.negative_image_embeds, un, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.loss, expected["loss"], atol=1e-6, rtol=0)
    assert set(out.loss_parts) == set(expected) - {"loss"}
    assert out.logits_per_image.shape == (3, 3)


def test_loss_has_gradients_for_both_towers_and_the_temperature(tiny_model_and_processor):
    model, processor = make_tiny()
    model.train()
    out = model(**batch(processor, TEXTS, NEGATIVES), return_loss=True)
    out.loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad != 0
    assert model.text_model.embeddings.token_embedding.weight.grad.abs().sum() > 0
    assert model.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_return_dict_false_gives_a_tuple(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    with torch.no_grad():
        out = model(**batch(processor, TEXTS, NEGATIVES), return_loss=True, return_dict=False)
    assert isinstance(out, tuple) and out[0].ndim == 0


# ---------------------------------------------------------------------------------------------------- Auto classes


def test_auto_classes_load_the_checkpoint_with_identical_outputs(tiny_checkpoint, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    assert isinstance(AutoConfig.from_pretrained(tiny_checkpoint), TripletCLIPConfig)
    loaded = AutoModel.from_pretrained(tiny_checkpoint)
    assert type(loaded) is TripletCLIPModel
    loaded_processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    inputs = batch(processor, TEXTS, NEGATIVES)
    assert torch.equal(loaded_processor(text=TEXTS, return_tensors="pt", padding=True)["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        a = model(**inputs, return_loss=True)
        b = loaded(**inputs, return_loss=True)
    for field in ("loss", "logits_per_image", "text_embeds", "negative_image_embeds"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    files = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"model.safetensors", "modeling_tripletclip.py", "configuration_tripletclip.py", "losses.py"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    auto_map = json.loads((tiny_checkpoint / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_tripletclip.TripletCLIPModel"
    assert auto_map["AutoModelForZeroShotImageClassification"] == "modeling_tripletclip.TripletCLIPModel"


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_tripletclip"] = None  # the package cannot be imported in this process
    sys.modules["dataset_builders"] = None
    import torch
    from transformers import AutoModel, AutoProcessor
    path, out = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    assert type(model).__name__ == "TripletCLIPModel", type(model)
    assert not type(model).__module__.startswith("modeling_tripletclip"), type(model).__module__
    inputs = torch.load(sys.argv[3], weights_only=True)
    with torch.no_grad():
        result = model(**inputs, return_loss=True)
    torch.save({"loss": result.loss, "logits": result.logits_per_image, "module": type(model).__module__}, out)
    """
)


def test_remote_code_loads_without_the_package(tiny_checkpoint, tiny_model_and_processor, tmp_path):
    model, processor = tiny_model_and_processor
    inputs = dict(batch(processor, TEXTS, NEGATIVES))
    torch.save(inputs, tmp_path / "inputs.pt")
    script = tmp_path / "load.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    subprocess.run(
        [sys.executable, str(script), str(tiny_checkpoint), str(tmp_path / "out.pt"), str(tmp_path / "inputs.pt")],
        check=True,
        cwd=tmp_path,
        # One thread, as in this process (conftest), so the outputs are bit-identical.
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
             "OMP_NUM_THREADS": "1"},
    )
    result = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        expected = model(**inputs, return_loss=True)
    assert result["module"].startswith("transformers_modules")
    assert torch.equal(result["loss"], expected.loss)
    assert torch.equal(result["logits"], expected.logits_per_image)


def test_zero_shot_pipeline_scores_a_real_photo(tiny_checkpoint, test_data):
    classifier = pipeline("zero-shot-image-classification", model=str(tiny_checkpoint))
    labels = ["cat", "dog", "horse"]
    result = classifier(Image.open(test_data / "images" / "chelsea.png"), candidate_labels=labels)
    assert sorted(r["label"] for r in result) == sorted(labels)
    assert abs(sum(r["score"] for r in result) - 1) < 1e-5
    assert all(0 <= r["score"] <= 1 for r in result)


# ---------------------------------------------------------------------------------------------------- conversion


def test_clip_checkpoint_converts_with_bit_identical_weights(tiny_clip_checkpoint, tmp_path):
    from modeling_tripletclip.cli import main

    clip = CLIPModel.from_pretrained(tiny_clip_checkpoint)
    converted = TripletCLIPModel.from_clip(tiny_clip_checkpoint, loss_type="negclip")
    assert converted.config.loss_type == "negclip"
    in_memory = TripletCLIPModel.from_clip(clip)
    for state in (converted.state_dict(), in_memory.state_dict()):
        reference = clip.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)

    assert main(["convert-clip", "--model_name_or_path", str(tiny_clip_checkpoint), "--output_dir", str(tmp_path / "tc"), "--loss_type", "negclip"]) == 0
    assert type(AutoModel.from_pretrained(tmp_path / "tc")) is CLIPModel  # the default form: a plain CLIP checkpoint
    reloaded = TripletCLIPModel.from_pretrained(tmp_path / "tc")
    assert reloaded.config.loss_type == "negclip"  # read back from config.json
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in clip.state_dict().items())
    assert (tmp_path / "tc" / "tokenizer.json").exists()


def test_tripletclip_from_pretrained_accepts_a_plain_clip_folder(tiny_clip_checkpoint):
    model = TripletCLIPModel.from_pretrained(tiny_clip_checkpoint)
    assert model.config.model_type == "tripletclip" and model.config.loss_type == "tripletclip"


# ---------------------------------------------------------------------------------------------------- presets


def test_presets_build_without_downloads():
    from modeling_tripletclip.presets import preset_config

    vit = preset_config("vit-b-32")
    assert (vit.vision_config.patch_size, vit.vision_config.image_size, vit.projection_dim) == (32, 224, 512)
    assert (vit.text_config.hidden_size, vit.text_config.num_hidden_layers, vit.text_config.max_position_embeddings) == (512, 12, 77)
    with torch.device("meta"):
        n = sum(p.numel() for p in TripletCLIPModel(vit).parameters())
    assert 149e6 < n < 153e6  # OpenAI CLIP ViT-B/32 has 151.3M parameters
    tiny = preset_config("tiny", loss_type="clip")
    assert tiny.loss_type == "clip" and tiny.vision_config.image_size == 64
    with pytest.raises(ValueError, match="Choose one of"):
        preset_config("vit-h-14")


# ---------------------------------------------------------------------------------------------------- bad input


def test_invalid_loss_type_lists_valid_ones():
    with pytest.raises(ValueError, match="'clip', 'negclip', 'tripletclip', 'clip_hn'"):
        TripletCLIPConfig(loss_type="triplet")


def test_missing_and_misshaped_negatives(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    inputs = batch(processor, TEXTS, NEGATIVES)
    no_images = {k: v for k, v in inputs.items() if k != "negative_pixel_values"}
    with pytest.raises(ValueError, match=r"needs negative images: pass `negative_pixel_values` of shape \(3, 3, 32, 32\)"):
        model(**no_images, return_loss=True, loss_type="tripletclip")
    no_captions = {k: v for k, v in inputs.items() if not k.startswith("negative_input_ids")}
    no_captions.pop("negative_attention_mask")
    with pytest.raises(ValueError, match="needs negative captions: pass `negative_input_ids`"):
        model(**no_captions, return_loss=True, loss_type="negclip")
    short = dict(inputs, negative_pixel_values=inputs["negative_pixel_values"][:2])
    with pytest.raises(ValueError, match=r"`negative_pixel_values` has shape \(2, 3, 32, 32\), expected \(3, 3, 32, 32\)"):
        model(**short, return_loss=True)
    short = dict(inputs, negative_input_ids=inputs["negative_input_ids"][:2], negative_attention_mask=None)
    with pytest.raises(ValueError, match="`negative_input_ids` has shape"):
        model(**short, return_loss=True)
    # negclip needs no negative images: they are simply unused when absent
    with torch.no_grad():
        assert model(**no_images, return_loss=True, loss_type="negclip").loss is not None


def test_wrong_pixel_size(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    inputs = batch(processor, TEXTS)
    inputs["pixel_values"] = torch.zeros(3, 3, 64, 64)
    with pytest.raises(ValueError, match=r"expected \(batch, 3, 32, 32\).*Prepare images with the model's processor"):
        model(**inputs)


def test_folders_that_are_not_clip_checkpoints(tmp_path, tiny_clip_checkpoint):
    from modeling_tripletclip.loading import load_tripletclip

    with pytest.raises(ValueError, match="has no config.json"):
        load_tripletclip(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="holds a 'bert' checkpoint, not a CLIP or TripletCLIP one"):
        load_tripletclip(tmp_path)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_clip_checkpoint / "config.json").read_text())
    torch.save({}, pickled / "pytorch_model.bin")
    with pytest.raises(ValueError, match="safetensors only"):
        load_tripletclip(pickled)


def test_a_tokenizer_trained_from_scratch_is_the_same_in_every_process(tmp_path):
    """BPE training numbers its tokens in an order that changes between processes; `train_tokenizer` renumbers them
    canonically, so two processes (two runs, or a run and its resume) give identical ids for the same corpus."""
    script = textwrap.dedent("""
        import json, sys
        from modeling_tripletclip.presets import train_tokenizer
        from conftest import CORPUS
        tokenizer = train_tokenizer(CORPUS)
        print(json.dumps({"vocab": tokenizer.get_vocab(), "ids": tokenizer(CORPUS[:3])["input_ids"],
                          "decoded": tokenizer.decode(tokenizer(CORPUS[0])["input_ids"], skip_special_tokens=True)}))
    """)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent, env={**os.environ, "PYTHONHASHSEED": "random"})
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1]
    from conftest import CORPUS

    assert runs[0]["decoded"].strip() == " ".join(CORPUS[0].lower().split())
    vocab = runs[0]["vocab"]
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert [vocab["<|startoftext|>"], vocab["<|endoftext|>"]] == [0, 1]


# ------------------------------------------------------------------------------------- a drop-in CLIPModel (1-6)


def clip_twin(model):
    """A transformers `CLIPModel` with the same weights (the plain CLIP form of the configuration)."""
    clip = CLIPModel(model.config.to_clip_config())
    clip.load_state_dict(model.state_dict())
    return clip.eval()


def test_interpolate_pos_encoding_works_as_in_clip(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    clip = clip_twin(model)
    inputs = batch(processor, TEXTS)
    larger = torch.randn(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))  # not the model's 32 px
    with torch.no_grad():
        ours = model(input_ids=inputs["input_ids"], pixel_values=larger, interpolate_pos_encoding=True)
        theirs = clip(input_ids=inputs["input_ids"], pixel_values=larger, interpolate_pos_encoding=True)
    assert torch.equal(ours.logits_per_image, theirs.logits_per_image)
    with pytest.raises(ValueError, match="expected"):  # without it, the size is still checked
        model(input_ids=inputs["input_ids"], pixel_values=larger)


def test_compiles_as_one_graph_with_the_loss_and_no_negatives(tiny_model_and_processor):
    model, processor = make_tiny()  # loss_type "tripletclip": without negatives it falls back to CLIP's loss
    model.eval()
    inputs = batch(processor, TEXTS)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected = model(**inputs, return_loss=True, loss_type="clip").loss
        got = compiled(**inputs, return_loss=True).loss
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_return_dict_false_returns_clips_tuple(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    clip = clip_twin(model)
    inputs = batch(processor, TEXTS)
    with torch.no_grad():
        ours = model(**inputs, return_loss=True, return_dict=False)
        theirs = clip(**inputs, return_loss=True, return_dict=False)
        loss, logits_per_image, logits_per_text, text_embeds, image_embeds, text_output, vision_output = ours
    assert len(ours) == len(theirs) == 7
    assert all(type(a) is type(b) for a, b in zip(ours, theirs))
    assert torch.equal(logits_per_image, theirs[1]) and torch.equal(image_embeds, theirs[4])
    with torch.no_grad():  # with negatives, their embeddings follow CLIP's seven values
        with_negatives = model(**batch(processor, TEXTS, NEGATIVES), return_loss=True, return_dict=False)
    assert len(with_negatives) == 9


def test_positional_arguments_are_clips():
    import inspect

    ours = list(inspect.signature(TripletCLIPModel.forward).parameters.values())
    theirs = list(inspect.signature(CLIPModel.forward).parameters.values())
    positional = [p.name for p in ours if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == [p.name for p in theirs if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional[5] == "return_loss" or positional[4] == "return_loss"
    keyword_only = {p.name for p in ours if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {"negative_input_ids", "negative_pixel_values", "negative_attention_mask", "loss_type", "gather"} == keyword_only
    assert ours[-1].annotation == theirs[-1].annotation or "TransformersKwargs" in str(ours[-1].annotation)


def test_a_clip_configuration_is_kept_whole(tiny_model_and_processor):
    model, _ = tiny_model_and_processor
    config = model.config.to_clip_config()
    config._attn_implementation = "eager"
    built = TripletCLIPModel(config)
    assert built.config._attn_implementation == "eager"
    assert built.config.to_dict()["text_config"] == TripletCLIPModel(model.config.to_clip_config()).config.to_dict()["text_config"]


def test_logits_and_embeddings_are_bit_identical_to_clip(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    model.eval()
    clip = clip_twin(model)
    inputs = batch(processor, TEXTS)
    with torch.no_grad():
        ours, theirs = model(**inputs), clip(**inputs)
    for field in ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
