"""`tripletclip push {model,dataset,space}`: the staged folders load as the published repositories would, the Hub is
called as expected (HfApi mocked: the network edge), and bad input stops everything before any upload."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from huggingface_hub import DatasetCard, HfApi, ModelCard, SpaceCard
from huggingface_hub.hf_api import RepoUrl
from PIL import Image

from modeling_tripletclip.cli import main
from modeling_tripletclip.hub import push as push_module
from modeling_tripletclip.hub.push import PushError, publish, stage_dataset, stage_model, stage_space

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT = {
    "outputs/tripletclip-world": {
        "sugarcrepe": {"swap_att": 0.812, "replace_rel": 0.5, "overall": 0.7},
        "winoground": {"text": 0.41, "image": 0.32, "group": 0.25},
        "similarity": {"positive_mean": 0.31, "negative_mean": 0.22},
    },
    "openai/clip-vit-base-patch32": {"sugarcrepe": {"swap_att": 0.62, "replace_rel": 0.55, "overall": 0.6}},
}
TRAINING_CONFIG = {"output_dir": "outputs/tripletclip-world", "preset": "tiny", "loss_type": "tripletclip",
                   "dataset": "world", "train_batch_size": 64, "learning_rate": 0.0005, "max_train_steps": 1200}


@pytest.fixture
def online(monkeypatch):
    """This process as on a machine with network access and a token (the HfApi itself is always mocked)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")


@pytest.fixture
def api():
    api = mock.create_autospec(HfApi, instance=True)
    api.create_repo.side_effect = lambda repo_id, **kwargs: RepoUrl(
        f"https://huggingface.co/{'' if kwargs.get('repo_type') == 'model' else kwargs['repo_type'] + 's/'}{repo_id}"
    )
    return api


@pytest.fixture
def trained(tiny_checkpoint, tmp_path) -> Path:
    """A trained checkpoint as the trainer leaves it: weights, code, processor, config and evaluation report."""
    folder = tmp_path / "tripletclip-world"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "eval_results.json").write_text(json.dumps(REPORT))
    (folder / "training_config.yaml").write_text(yaml.safe_dump(TRAINING_CONFIG))
    Image.new("RGB", (40, 30), "white").save(folder / "loss_curve.png")
    (folder / "checkpoint-1200").mkdir()  # resumable training state: not part of the release
    (folder / "checkpoint-1200" / "optimizer.bin").write_bytes(b"state")
    (folder / "metrics.jsonl").write_text("{}\n")
    return folder


def card_python_block(text: str) -> str:
    return text.split("```python\n", 1)[1].split("```", 1)[0]


# ------------------------------------------------------------------------------------------------ model


REMOTE_SCRIPT = textwrap.dedent(
    """
    import io, json, sys, urllib.request
    sys.modules["modeling_tripletclip"] = None  # our package cannot be imported here
    sys.modules["dataset_builders"] = None
    import torch
    from transformers import AutoModel, AutoProcessor, pipeline

    folder, photo, inputs_path, out_path, snippet_path = sys.argv[1:6]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    with torch.no_grad():
        logits = model(**torch.load(inputs_path, weights_only=True)).logits_per_image

    # The card's usage snippet, as written, with the network replaced by a local photo.
    urllib.request.urlopen = lambda url, *a, **k: open(photo, "rb")
    namespace = {}
    exec(open(snippet_path).read(), namespace)
    probs = namespace["probs"]
    classifier = pipeline("zero-shot-image-classification", model=folder, trust_remote_code=True)
    labels = classifier(namespace["image"], candidate_labels=["cat", "dog"])
    # A plain CLIPModel round trip keeps auto_map without the code files: the entries name the repository, so
    # trust_remote_code still finds the code there (here: in the Hub cache, the network edge).
    from transformers import CLIPModel
    CLIPModel.from_pretrained(folder).save_pretrained(folder + "-roundtrip")
    again = AutoModel.from_pretrained(folder + "-roundtrip", trust_remote_code=True)
    assert type(again).__name__ == "TripletCLIPModel", type(again)
    with torch.no_grad():
        logits_again = again(**torch.load(inputs_path, weights_only=True)).logits_per_image
    torch.save({"logits": logits, "probs": probs, "text_embeds": namespace["text_embeds"],
                "labels": [r["label"] for r in labels], "roundtrip": logits_again}, out_path)
    """
)


def hub_cache_holding(folder: Path, repo_id: str, cache: Path) -> Path:
    """A Hugging Face cache in which ``repo_id``'s main revision holds the files of ``folder`` (what a download of the
    published repository leaves there): offline, huggingface_hub serves them from it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    return cache


def test_push_model_dry_run_assembles_a_folder_that_loads_without_our_package(
    trained, tiny_model_and_processor, test_data, tmp_path, capsys
):
    # The remote-code form (the default, a plain CLIP checkpoint, is tested client by client in test_clients.py).
    staging = tmp_path / "staged"
    code = main(["push", "model", "--model_name_or_path", str(trained), "--repo-id", "me/tripletclip-world", "--dry-run",
                 "--output_dir", str(staging), "--eval-model", "outputs/tripletclip-world",
                 "--checkpoint_format", "remote_code"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Dry run: nothing was uploaded" in printed
    assert "model.safetensors" in printed and "modeling_tripletclip.py" in printed and "KB" in printed

    files = {p.name for p in staging.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_tripletclip.py", "configuration_tripletclip.py",
            "losses.py", "tokenizer.json", "processor_config.json", "README.md", "eval_results.json",
            "training_config.yaml"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    assert "loss_curve.png" in files and not {"checkpoint-1200", "metrics.jsonl"} & files

    card = ModelCard.load(staging / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "zero-shot-image-classification"
    assert card.data.license == "apache-2.0"
    results = {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}
    # Trained on the built-in world: its benchmarks are named as the world's, never as the official datasets.
    from modeling_tripletclip.evaluation.report import WORLD_CARD_DATASETS

    sugarcrepe, winoground = WORLD_CARD_DATASETS["sugarcrepe"][0], WORLD_CARD_DATASETS["winoground"][0]
    assert results[(sugarcrepe, f"{sugarcrepe} swap_att")] == pytest.approx(0.812)
    assert results[(winoground, f"{winoground} group")] == pytest.approx(0.25)
    assert not {"SugarCrepe", "Winoground"} & {dataset for dataset, _ in results}
    assert card.data.model_name == "tripletclip-world"
    assert "| sugarcrepe | swap_att | 0.812 | 0.620 |" in card.text  # the baseline beside it
    assert "max_train_steps: 1200" in card.text  # the training configuration
    assert 'AutoModel.from_pretrained("me/tripletclip-world", trust_remote_code=True)' in card.text
    assert "![Training loss](loss_curve.png)" in card.text

    # A fresh process without our package loads the folder, and the card's snippet runs as written.
    model, processor = tiny_model_and_processor
    texts = ["a photo of a cat", "a photo of a dog"]
    inputs = dict(processor(text=texts, images=[Image.open(test_data / "images" / "chelsea.png").convert("RGB")],
                            return_tensors="pt", padding=True))
    torch.save(inputs, tmp_path / "inputs.pt")
    snippet = card_python_block(card.text).replace("me/tripletclip-world", str(staging))
    (tmp_path / "snippet.py").write_text(snippet)
    (tmp_path / "remote.py").write_text(REMOTE_SCRIPT)
    subprocess.run(
        [sys.executable, str(tmp_path / "remote.py"), str(staging), str(test_data / "images" / "chelsea.png"),
         str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt"), str(tmp_path / "snippet.py")],
        check=True, cwd=tmp_path, capture_output=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
             "HF_HUB_CACHE": str(hub_cache_holding(staging, "me/tripletclip-world", tmp_path / "hub"))},
    )
    result = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        expected = model(**inputs).logits_per_image
    torch.testing.assert_close(result["logits"], expected, rtol=0, atol=1e-5)  # same weights, another process
    torch.testing.assert_close(result["roundtrip"], expected, rtol=0, atol=1e-5)
    assert all(ref.startswith("me/tripletclip-world--") for ref in json.loads(
        (staging / "config.json").read_text())["auto_map"].values())
    assert result["probs"].shape == (3,) and abs(result["probs"].sum().item() - 1) < 1e-5
    assert result["text_embeds"].shape == (3, model.config.projection_dim)
    assert sorted(result["labels"]) == ["cat", "dog"]


def test_push_model_uploads_the_staged_folder_in_one_commit(trained, api, online):
    uploaded = {}

    def record(**kwargs):
        uploaded.update(kwargs, files=sorted(p.name for p in Path(kwargs["folder_path"]).iterdir()))

    api.upload_folder.side_effect = record
    staged, url = publish("model", trained, "me/tripletclip-world", private=True, api=api, eval_model=None,
                       eval_results=None, processor=None, datasets=["me/tripletdata"], base_model=None, license="mit")
    api.create_repo.assert_called_once_with(
        "me/tripletclip-world", token="hf_test_token", private=True, repo_type="model", exist_ok=True
    )
    api.upload_folder.assert_called_once()
    assert uploaded["repo_id"] == "me/tripletclip-world" and uploaded["repo_type"] == "model"
    assert uploaded["token"] == "hf_test_token"
    assert push_module.STAGING_MARKER in uploaded["ignore_patterns"]
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= set(uploaded["files"])
    # The default form: a plain CLIP checkpoint, no code to trust.
    assert not any(name.endswith(".py") for name in uploaded["files"])
    assert 'AutoModel.from_pretrained("me/tripletclip-world")' in (staged.path / "README.md").read_text() \
        if staged.path.exists() else True
    assert url == "https://huggingface.co/me/tripletclip-world"
    assert not staged.path.exists()  # the temporary staging folder is cleaned up after the upload


def test_push_model_card_metadata_from_options_and_report_without_eval_model(trained, tmp_path):
    # The report names the checkpoint by path: the staging step finds it without --eval-model.
    report = {str(trained): REPORT["outputs/tripletclip-world"], "openai/clip-vit-base-patch32": {}}
    (trained / "eval_results.json").write_text(json.dumps(report))
    staged = stage_model(trained, "me/tc", tmp_path / "s", datasets=["me/tripletdata"], base_model="openai/clip-vit-base-patch32",
                         license="mit")
    card = ModelCard.load(staged.path / "README.md")
    assert card.data.datasets == ["me/tripletdata"] and card.data.base_model == "openai/clip-vit-base-patch32"
    assert card.data.license == "mit"
    assert len(card.data.eval_results) == 6  # similarity is descriptive, not a model-index result


@pytest.mark.parametrize("setting", ["offline", "no token"])
def test_offline_or_missing_token_fails_before_anything_is_staged_or_uploaded(
    trained, api, monkeypatch, tmp_path, setting
):
    from huggingface_hub import constants

    if setting == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        expected = "offline mode \\(HF_HUB_OFFLINE=1\\).*--dry_run"
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        expected = "No Hugging Face token found.*hf auth login.*HF_TOKEN.*--token"
    with pytest.raises(PushError, match=expected):
        publish("model", trained, "me/tc", staging_dir=tmp_path / "staged", api=api)
    assert not (tmp_path / "staged").exists()
    assert api.method_calls == []


def test_bad_repo_ids_and_sources_give_clear_errors(tiny_checkpoint, tmp_path, api, online, capsys):
    for bad in ("me/tc/extra", "me/has space", "me--double", "", "-leading/x"):
        with pytest.raises(PushError, match="not a valid Hub repository id.*--repo_id your-name/"):
            publish("model", tiny_checkpoint, bad, api=api)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    with pytest.raises(PushError, match="no safetensors weights"):
        publish("model", no_weights, "me/tc", api=api)
    no_processor = tmp_path / "no-processor"
    no_processor.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_checkpoint / name, no_processor / name)
    with pytest.raises(PushError, match="holds no processor.*--processor"):
        publish("model", no_processor, "me/tc", api=api)
    assert api.method_calls == []
    # On the command line: exit code 2 and the message on stderr, nothing uploaded.
    assert main(["push", "dataset", "--dataset", str(tmp_path), "--repo-id", "me/bad..id", "--dry-run"]) == 2
    assert "not a valid Hub repository id" in capsys.readouterr().err


def test_staging_dir_that_holds_other_files_is_refused(trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(PushError, match="not empty and was not made by `tripletclip push`"):
        stage_model(trained, "me/tc", mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    first = stage_model(trained, "me/tc", tmp_path / "again")
    second = stage_model(trained, "me/tc", tmp_path / "again")  # a staging folder of ours is rebuilt
    assert [name for name, _ in first.files] == [name for name, _ in second.files]


# ------------------------------------------------------------------------------------------------ dataset


def triplet_rows(n=5):
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    rgb = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220), "yellow": (230, 210, 40),
           "purple": (130, 40, 160), "orange": (240, 140, 20)}
    rows = []
    for i in range(n):
        a, b = colours[i % 6], colours[(i + 1) % 6]
        rows.append({
            "image": Image.new("RGB", (24, 24), rgb[a]),
            "caption": f"a {a} square",
            "negative_image": Image.new("RGB", (24, 24), rgb[b]),
            "negative_caption": f"a {b} square",
            "id": f"row-{i}",
            "negative_kind": "replace_att",
        })
    return rows


@pytest.fixture
def tripletdata(tmp_path) -> Path:
    from dataset_builders.hub_layout import write_tripletdata

    folder = tmp_path / "tripletdata"
    write_tripletdata(triplet_rows(5), folder, rows_per_shard=2, progress=False, pretty_name="Squares",
                      license="cc-by-4.0", details="Five squares and their recoloured twins.")
    return folder


def test_push_dataset_dry_run_stages_a_loadable_dataset_with_its_card(tripletdata, tmp_path, api, online):
    import datasets

    staged = stage_dataset(tripletdata, "me/squares", tmp_path / "staged")
    names = [name for name, _ in staged.files]
    assert names == ["README.md", "data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet",
                     "data/train-00002-of-00003.parquet", "sample_grid.png"]
    loaded = datasets.load_dataset(str(staged.path), split="train")
    assert loaded.num_rows == 5
    assert isinstance(loaded.features["negative_image"], datasets.Image)
    assert loaded[3]["negative_caption"] == "a purple square"
    card = DatasetCard.load(staged.path / "README.md")
    assert card.data.pretty_name == "Squares" and card.data.license == "cc-by-4.0"  # kept from the source card
    assert "![Sample rows](sample_grid.png)" in card.text
    assert 'load_dataset("me/squares"' in card.text
    assert "Five squares and their recoloured twins." in card.text
    assert Image.open(staged.path / "sample_grid.png").size[0] > 100
    assert DatasetCard(str(card)).data.to_dict() == card.data.to_dict()

    api.upload_folder.side_effect = None
    _, url = publish("dataset", tripletdata, "me/squares", api=api)
    api.create_repo.assert_called_once_with("me/squares", token="hf_test_token", private=False,
                                            repo_type="dataset", exist_ok=True)
    assert api.upload_folder.call_args.kwargs["repo_type"] == "dataset"
    assert url == "https://huggingface.co/datasets/me/squares"


def test_push_dataset_refuses_folders_that_are_not_tripletdata(tmp_path, tiny_checkpoint):
    from datasets import Features, Value

    from dataset_builders.hub_layout import write_dataset

    with pytest.raises(PushError, match="holds no parquet shards.*tripletclip data world"):
        stage_dataset(tiny_checkpoint, "me/x", tmp_path / "a")
    pairs = tmp_path / "pairs"
    write_dataset([{"caption": "a cat", "label": "cat"}], pairs, Features({"caption": Value("string"),
                                                                          "label": Value("string")}),
                  progress=False, card=False)
    with pytest.raises(PushError, match=r"is not TripletData.*\['image', 'negative_image', 'negative_caption'\]"):
        stage_dataset(pairs, "me/x", tmp_path / "b")


# ------------------------------------------------------------------------------------------------ space


def test_push_space_stages_the_app_with_a_bundled_model_and_a_hub_baseline(tiny_checkpoint, tmp_path, api, online):
    staged = stage_space(REPO_ROOT / "spaces", "me/demo", tmp_path / "space", model=str(tiny_checkpoint),
                         baseline="openai/clip-vit-base-patch32")
    names = {name for name, _ in staged.files}
    assert {"app.py", "requirements.txt", "README.md", "models.json", "models/tripletclip/model.safetensors",
            "models/tripletclip/tokenizer.json", "rules.py", "images.py"} <= names
    assert not any(name.startswith("dataset_builders/") for name in names)  # the data package is not copied
    assert any(name.startswith("examples/") and name.endswith(".png") for name in names)
    assert not any("__pycache__" in name for name in names)
    assert json.loads((staged.path / "models.json").read_text()) == [
        {"label": "TripletCLIP", "model": "models/tripletclip"},
        {"label": "CLIP baseline", "model": "openai/clip-vit-base-patch32"},
    ]
    card = SpaceCard.load(staged.path / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.models == ["openai/clip-vit-base-patch32"]
    import gradio

    assert card.data.sdk_version == gradio.__version__
    assert "8 captions" in card.text  # the app's LIMITS, shown in the card
    _, url = publish("space", REPO_ROOT / "spaces", "me/demo", api=api, model="me/tripletclip-world", baseline=None,
                  title=None, license=None)
    assert api.create_repo.call_args.kwargs == {"token": "hf_test_token", "private": False, "repo_type": "space",
                                                "exist_ok": True, "space_sdk": "gradio"}
    assert url == "https://huggingface.co/spaces/me/demo"


def test_push_space_refuses_a_folder_without_app_and_an_unknown_model(tmp_path):
    with pytest.raises(PushError, match="has no app.py"):
        stage_space(tmp_path, "me/demo", tmp_path / "s")
    with pytest.raises(PushError, match="neither a checkpoint folder"):
        stage_space(REPO_ROOT / "spaces", "me/demo", tmp_path / "s", model=str(tmp_path / "nothing-here"))


def test_trainer_push_to_hub_uploads_the_final_model_with_the_push_code(tiny_checkpoint, tmp_path, api, online,
                                                                        monkeypatch):
    import huggingface_hub

    from modeling_tripletclip.training import main as train_main
    from test_train import base_flags, tiny_world  # noqa: F401

    from dataset_builders.world import generate_world

    world = generate_world(tmp_path / "world", num_train=40, num_test=4, sugarcrepe_per_kind=2, num_winoground=7,
                           num_retrieval=4, progress=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: api)  # the network edge only
    uploaded = {}

    def record(**kwargs):  # what would go over the wire: every file and its bytes
        folder = Path(kwargs["folder_path"])
        uploaded.update({p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
                         and p.name not in kwargs["ignore_patterns"]})

    api.upload_folder.side_effect = record
    out = tmp_path / "run"
    train_main(base_flags(world, tiny_checkpoint, out, max_train_steps=2, push_to_hub="true",
                          hub_model_id="me/pushed-run", eval_benchmarks="sugarcrepe"))
    # The folder the trainer wrote, uploaded byte for byte: the weights are neither reloaded nor saved again.
    assert {"model.safetensors", "config.json", "README.md", "eval_results.json", "tokenizer.json"} <= set(uploaded)
    assert all(uploaded[name] == (out / name).read_bytes() for name in uploaded), sorted(uploaded)
    assert not any(name.startswith("checkpoint-") or name == "metrics.jsonl" for name in uploaded)
    api.create_repo.assert_called_once()
    assert api.create_repo.call_args.args[0] == "me/pushed-run"
    upload = api.upload_folder.call_args.kwargs
    assert upload["repo_id"] == "me/pushed-run" and upload["repo_type"] == "model"
    assert "2 steps" in upload["commit_message"]

    # The uploaded folder is what `tripletclip push model` assembles: checked before anything trains.
    with pytest.raises(PushError, match="is not a valid Hub repository id"):
        train_main(base_flags(world, tiny_checkpoint, tmp_path / "bad", push_to_hub="true", hub_model_id="no//good"))
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
