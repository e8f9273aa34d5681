"""A published checkpoint works wherever CLIP works: each client users load it with, in a fresh process without our
package, gives our own model's numbers.

The default published form (`tripletclip push model`) is a plain CLIP checkpoint; the clients are transformers'
`AutoModel`, `AutoModelForZeroShotImageClassification`, `CLIPModel` and the zero-shot pipeline, sentence-transformers,
PEFT's `AutoPeftModel`, and ONNX Runtime on a `torch.onnx.export` of it (and, in an environment with transformers 4,
transformers 4 itself and `optimum-cli export onnx`). The remote-code form is tested in test_hub_push.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_tiny
from modeling_tripletclip import TripletCLIPModel
from modeling_tripletclip.hub.push import stage_model
from modeling_tripletclip.loading import save_checkpoint

TEXTS = ["a photo of a cat", "a photo of a dog", "a red circle to the left of a blue square"]
LABELS = ["cat", "dog"]
TOLERANCE = 1e-6

#: Run first in every client process: our packages cannot be imported there.
WITHOUT_OUR_PACKAGE = 'import sys\nsys.modules["modeling_tripletclip"] = None\nsys.modules["dataset_builders"] = None\n'


def run_client(script: str, tmp_path: Path, *args: str, python: str = sys.executable) -> dict:
    """Run ``script`` in a fresh process without our package; it writes its results to ``argv[1]`` (torch.save)."""
    path = tmp_path / "client.py"
    path.write_text(WITHOUT_OUR_PACKAGE + textwrap.dedent(script))
    out = tmp_path / "client-out.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([python, str(path), str(out), *args], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def published(tmp_path_factory, test_data):
    """A trained-like TripletCLIP model (negclip, CyCLIP weights set) staged by `push model` in the default form,
    its inputs, and our own numbers for them."""
    root = tmp_path_factory.mktemp("published")
    model, processor = make_tiny(loss_type="negclip", seed=3)
    model.config.cyclip_in_modal_weight = 0.25
    model.eval()
    save_checkpoint(model, root / "checkpoint", processor=processor, checkpoint_format="remote_code")
    staged = stage_model(root / "checkpoint", "me/tripletclip-tiny", root / "staged")
    images = [Image.open(test_data / "images" / name).convert("RGB") for name in ("chelsea.png", "astronaut.png")]
    inputs = dict(processor(text=TEXTS, images=images, return_tensors="pt", padding=True))
    torch.save(inputs, root / "inputs.pt")
    images[0].save(root / "image.png")
    with torch.no_grad():
        ours = model(**inputs)
        text_features = model.get_text_features(input_ids=inputs["input_ids"],
                                                attention_mask=inputs["attention_mask"]).pooler_output
        image_features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        # The zero-shot pipeline's own text: its template, padded as it pads.
        hypotheses = processor(text=[f"This is a photo of {label}." for label in LABELS], images=images[:1],
                               return_tensors="pt", padding=True)
        pipeline_probs = model(**hypotheses).logits_per_image.softmax(dim=-1)[0]
    return {"folder": staged.path, "root": root, "model": model, "processor": processor, "inputs": inputs,
            "logits": ours.logits_per_image, "text_embeds": ours.text_embeds, "image_embeds": ours.image_embeds,
            "text_features": text_features, "image_features": image_features,
            "pipeline": dict(zip(LABELS, pipeline_probs.tolist()))}


def assert_within(actual: torch.Tensor, expected: torch.Tensor, what: str, tolerance: float = TOLERANCE) -> float:
    difference = (actual.float() - expected.float()).abs().max().item()
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert difference <= tolerance, f"{what}: max difference {difference:.2e} > {tolerance:.0e}"
    return difference


def test_the_default_published_form_is_a_plain_clip_checkpoint(published):
    folder = published["folder"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "clip" and config["architectures"] == ["CLIPModel"]
    assert "auto_map" not in config and not list(folder.glob("*.py"))
    # The TripletCLIP settings travel in config.json, and TripletCLIPModel reads them back: no flag needed to train on.
    assert config["tripletclip"]["loss_type"] == "negclip" and config["tripletclip"]["cyclip_in_modal_weight"] == 0.25
    reloaded = TripletCLIPModel.from_pretrained(folder)
    assert reloaded.config.loss_type == "negclip" and reloaded.config.cyclip_in_modal_weight == 0.25
    reference = published["model"].state_dict()
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in reference.items())
    # Saved again in the default form, the folder is the same checkpoint (nothing lost on a round trip).
    save_checkpoint(reloaded, published["root"] / "again")
    again = json.loads((published["root"] / "again" / "config.json").read_text())
    assert again["tripletclip"] == config["tripletclip"]
    card = (folder / "README.md").read_text()
    assert 'AutoModel.from_pretrained("me/tripletclip-tiny")' in card and "trust_remote_code" not in card


TRANSFORMERS_CLIENTS = """
    import torch
    from PIL import Image
    from transformers import (AutoModel, AutoModelForZeroShotImageClassification, AutoProcessor, CLIPModel,
                              pipeline)

    out, folder, inputs_path, image_path = sys.argv[1:5]
    inputs = torch.load(inputs_path, weights_only=True)
    results = {}
    for name, loader in (("AutoModel", AutoModel), ("AutoModelForZeroShotImageClassification",
                                                    AutoModelForZeroShotImageClassification), ("CLIPModel", CLIPModel)):
        model = loader.from_pretrained(folder).eval()  # no trust_remote_code
        results[name + ".class"] = torch.tensor([type(model).__name__ == "CLIPModel"])
        with torch.no_grad():
            output = model(**inputs)
        results[name] = output.logits_per_image
        results[name + ".text_embeds"] = output.text_embeds
        results[name + ".image_embeds"] = output.image_embeds
    processor = AutoProcessor.from_pretrained(folder)
    again = processor(text=%r, images=[Image.open(image_path)], return_tensors="pt", padding=True)
    results["processor"] = again["input_ids"]
    classifier = pipeline("zero-shot-image-classification", model=folder)
    scores = {r["label"]: r["score"] for r in classifier(Image.open(image_path), candidate_labels=%r)}
    results["pipeline"] = torch.tensor([scores[label] for label in %r])
    torch.save(results, out)
""" % (TEXTS, LABELS, LABELS)


def test_transformers_clients_load_it_with_no_flag(published, tmp_path):
    results = run_client(TRANSFORMERS_CLIENTS, tmp_path, str(published["folder"]), str(published["root"] / "inputs.pt"),
                         str(published["root"] / "image.png"))
    figures = {}
    for name in ("AutoModel", "AutoModelForZeroShotImageClassification", "CLIPModel"):
        assert results[name + ".class"].item()
        figures[name] = assert_within(results[name], published["logits"], name)
        assert_within(results[name + ".text_embeds"], published["text_embeds"], name)
        assert_within(results[name + ".image_embeds"], published["image_embeds"], name)
    assert torch.equal(results["processor"][:, : published["inputs"]["input_ids"].shape[1]],
                       published["inputs"]["input_ids"])
    expected = torch.tensor([published["pipeline"][label] for label in LABELS])
    figures["pipeline"] = assert_within(results["pipeline"], expected, "pipeline")
    print("max |difference| against TripletCLIPModel:", figures)


SENTENCE_TRANSFORMERS_CLIENT = """
    import torch
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    out, folder, image_path, saved = sys.argv[1:5]
    model = SentenceTransformer(folder, device="cpu")  # no trust_remote_code
    texts = model.encode(%r, convert_to_tensor=True)
    images = model.encode([Image.open(image_path)], convert_to_tensor=True)
    model.save(saved)
    reloaded = SentenceTransformer(saved, device="cpu")
    torch.save({"texts": texts, "images": images, "reloaded": reloaded.encode(%r, convert_to_tensor=True)}, out)
""" % (TEXTS, TEXTS)


def test_sentence_transformers_loads_it_and_its_own_save_with_no_flag(published, tmp_path):
    results = run_client(SENTENCE_TRANSFORMERS_CLIENT, tmp_path, str(published["folder"]),
                         str(published["root"] / "image.png"), str(tmp_path / "st"))
    model, processor = published["model"], published["processor"]
    with torch.no_grad():
        # sentence-transformers tokenises each caption with the processor's defaults and returns the projected
        # embeddings; padding does not change a CLIP text embedding (causal, pooled at the end token).
        texts = torch.cat([model.get_text_features(**processor(text=[t], return_tensors="pt")).pooler_output
                           for t in TEXTS])
        image = model.get_image_features(pixel_values=published["inputs"]["pixel_values"][:1]).pooler_output
    assert_within(results["texts"], texts, "sentence-transformers texts")
    assert_within(results["images"], image, "sentence-transformers images")
    assert_within(results["reloaded"], texts, "sentence-transformers reloaded")


PEFT_CLIENT = """
    import torch
    from peft import AutoPeftModel

    out, adapter, inputs_path = sys.argv[1:4]
    model = AutoPeftModel.from_pretrained(adapter).eval()  # the base is the published checkpoint, no flag
    with torch.no_grad():
        logits = model(**torch.load(inputs_path, weights_only=True)).logits_per_image
    torch.save({"logits": logits, "base": type(model.get_base_model()).__name__ == "CLIPModel"}, out)
"""


def test_peft_adapters_on_it_load_with_auto_peft_model(published, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPModel

    base = CLIPModel.from_pretrained(published["folder"])
    torch.manual_seed(0)
    adapted = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                              init_lora_weights=False)).eval()  # non-zero adapters: they matter
    adapted.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = adapted(**published["inputs"]).logits_per_image
    assert (expected - published["logits"]).abs().max() > 1e-3  # the adapters change the model
    results = run_client(PEFT_CLIENT, tmp_path, str(tmp_path / "adapter"), str(published["root"] / "inputs.pt"))
    assert results["base"]
    assert_within(results["logits"], expected, "AutoPeftModel")


def export_onnx(folder: Path, path: Path) -> None:
    """The README's ONNX export of a published checkpoint: `torch.onnx.export`, dynamic batch and sequence."""
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()

    class Logits(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, input_ids, pixel_values, attention_mask):
            output = self.clip(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
            return output.logits_per_image, output.text_embeds, output.image_embeds

    example = (torch.ones(2, 7, dtype=torch.long), torch.zeros(1, 3, 32, 32), torch.ones(2, 7, dtype=torch.long))
    torch.onnx.export(Logits(model), example, str(path), input_names=["input_ids", "pixel_values", "attention_mask"],
                      output_names=["logits_per_image", "text_embeds", "image_embeds"],
                      dynamic_axes={"input_ids": {0: "texts", 1: "sequence"}, "attention_mask": {0: "texts", 1: "sequence"},
                                    "pixel_values": {0: "images"}}, dynamo=False)


def test_onnx_export_runs_in_onnx_runtime_with_the_same_numbers(published, tmp_path):
    import onnxruntime

    export_onnx(published["folder"], tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = published["inputs"]  # another batch size and length than the export's example: the axes are dynamic
    logits, text_embeds, image_embeds = session.run(None, {name: inputs[name].numpy() for name in
                                                           ("input_ids", "pixel_values", "attention_mask")})
    assert_within(torch.from_numpy(logits), published["logits"], "ONNX Runtime logits", 1e-5)
    assert_within(torch.from_numpy(text_embeds), published["text_embeds"], "ONNX Runtime text embeddings", 1e-5)
    assert_within(torch.from_numpy(image_embeds), published["image_embeds"], "ONNX Runtime image embeddings", 1e-5)


# ------------------------------------------------------------------------------------------------ transformers 4

#: transformers 4 and optimum's ONNX exporter (which requires transformers < 5), in an environment of their own.
TRANSFORMERS_4 = ("transformers==4.57.*", "optimum-onnx[onnxruntime]==0.1.0", "pillow")


@pytest.fixture(scope="session")
def transformers_4_python() -> str:
    """The Python of a virtual environment with transformers 4 and optimum, built once and kept in the package
    cache (``TRIPLETCLIP_CACHE``). Building it needs the package index; a machine without one gets an error."""
    root = Path(os.environ.get("TRIPLETCLIP_CACHE", Path.home() / ".cache" / "tripletclip")) / "test-envs"
    env = root / ("transformers4-" + "-".join(p.split("==")[-1].strip("*.") for p in TRANSFORMERS_4[:2]))
    python = env / "bin" / "python"
    if not (env / "ready").is_file():
        venv.create(env, with_pip=True, clear=True)
        torch_version = torch.__version__.split("+")[0]
        for packages in ((f"torch=={torch_version}",), TRANSFORMERS_4):
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        (env / "ready").write_text("ok\n")
    return str(python)


TRANSFORMERS_4_CLIENT = """
    import subprocess, os
    import numpy, torch, transformers
    from PIL import Image
    from transformers import AutoModel, AutoProcessor, pipeline

    out, folder, inputs_path, image_path, onnx_dir = sys.argv[1:6]
    assert transformers.__version__.startswith("4."), transformers.__version__
    inputs = torch.load(inputs_path, weights_only=True)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    classifier = pipeline("zero-shot-image-classification", model=folder)
    scores = {r["label"]: r["score"] for r in classifier(Image.open(image_path), candidate_labels=%r)}
    processor = AutoProcessor.from_pretrained(folder)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "optimum-cli"), "export", "onnx", "--model", folder,
                    "--task", "zero-shot-image-classification", onnx_dir], check=True, capture_output=True)
    import onnxruntime
    session = onnxruntime.InferenceSession(os.path.join(onnx_dir, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    onnx_logits = session.run(["logits_per_image"], {n: inputs[n].numpy() for n in names})[0]
    torch.save({"logits": logits, "pipeline": torch.tensor([scores[l] for l in %r]),
                "onnx": torch.from_numpy(onnx_logits)}, out)
""" % (LABELS, LABELS)


@pytest.mark.slow
def test_transformers_4_and_optimum_onnx_load_it(published, transformers_4_python, tmp_path):
    results = run_client(TRANSFORMERS_4_CLIENT, tmp_path, str(published["folder"]),
                         str(published["root"] / "inputs.pt"), str(published["root"] / "image.png"),
                         str(tmp_path / "onnx"), python=transformers_4_python)
    assert_within(results["logits"], published["logits"], "transformers 4 AutoModel")
    expected = torch.tensor([published["pipeline"][label] for label in LABELS])
    assert_within(results["pipeline"], expected, "transformers 4 pipeline")
    assert_within(results["onnx"], published["logits"], "optimum-cli export onnx + ONNX Runtime", 1e-5)
