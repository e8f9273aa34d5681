"""Model and Space cards: typed metadata, YAML that round-trips through huggingface_hub's card classes, and bodies
rendered from the templates in model_cards/."""

from __future__ import annotations

import pytest
import yaml
from huggingface_hub import EvalResult, ModelCard, SpaceCard

from modeling_tripletclip.evaluation.report import split_report
from modeling_tripletclip.hub.cards import render_model_card, render_space_card, template_path

ONE_MODEL = {"sugarcrepe": {"swap_att": 0.8125, "overall": 0.7}, "retrieval": {"image_recall@1": 0.5},
             "similarity": {"positive_mean": 0.3}}
TRAINING = {"output_dir": "outputs/run", "loss_type": "negclip", "dataset": "me/tripletdata",
            "model_name_or_path": "openai/clip-vit-base-patch32", "learning_rate": 5e-4, "seed": 0,
            "lora_target_modules": ("q_proj", "v_proj")}


def front_matter(card) -> dict:
    return yaml.safe_load(str(card).split("---\n")[1])


def test_trainer_card_from_one_models_results_round_trips(tiny_model_and_processor):
    model, _ = tiny_model_and_processor
    card = render_model_card(TRAINING, None, ONE_MODEL, None, "apache-2.0", repo_id="me/run", model_config=model.config,
                             num_parameters=75_000)
    assert isinstance(card, ModelCard)
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "zero-shot-image-classification"
    assert meta["base_model"] == "openai/clip-vit-base-patch32"  # from the training configuration
    assert meta["datasets"] == ["me/tripletdata"]
    assert {"tripletclip", "clip", "negclip"} <= set(meta["tags"])
    index = meta["model-index"][0]
    assert index["name"] == "run"
    metrics = {m["name"]: m["value"] for result in index["results"] for m in result["metrics"]}
    assert metrics["SugarCrepe swap_att"] == 0.8125 and metrics["Image-text retrieval image_recall@1"] == 0.5
    assert not any("similarity" in name for name in metrics)  # descriptive, not a result

    reloaded = ModelCard(str(card))
    assert reloaded.data.to_dict() == card.data.to_dict()
    assert all(isinstance(r, EvalResult) for r in reloaded.data.eval_results)
    assert [r.metric_value for r in reloaded.data.eval_results] == [r.metric_value for r in card.data.eval_results]
    assert "| sugarcrepe | swap_att | 0.812 |" in card.text
    assert "| similarity | positive_mean | 0.300 |" in card.text
    assert "lora_target_modules:\n- q_proj\n- v_proj" in card.text
    assert "| Objective | `negclip`: NegCLIP" in card.text
    assert "Vision encoder | ViT, 32 px images, patch 8, 2 layers of width 32" in card.text
    assert "context (64 tokens)" in card.text


def test_trainer_report_with_the_untrained_baseline_picks_the_model_by_name():
    report = {"untrained": {"sugarcrepe": {"overall": 0.5}}, "outputs/run": {"sugarcrepe": {"overall": 0.75}}}
    card = render_model_card(TRAINING, ["world"], report, model_name="outputs/run")
    assert [r.metric_value for r in card.data.eval_results] == [0.75]
    assert "| sugarcrepe | overall | 0.750 | 0.500 |" in card.text
    assert "The first column is this model (`outputs/run`)" in card.text


def test_card_without_results_or_hub_datasets():
    card = render_model_card({"dataset": "world", "loss_type": "tripletclip"}, license="mit")
    meta = front_matter(card)
    assert "model-index" not in meta and "datasets" not in meta and "base_model" not in meta
    assert "## Evaluation results" not in card.text
    assert "built-in procedural compositional world" in card.text
    assert 'AutoModel.from_pretrained("path/to/tripletclip")' in card.text and "trust_remote_code" not in card.text
    assert ModelCard(str(card)).data.license == "mit"


def test_report_shapes():
    assert split_report(ONE_MODEL)[0] == "this model"
    key, models = split_report({"a": ONE_MODEL, "b": {"sugarcrepe": {"overall": 0.6, "skipped": "3 rows"}}}, "b")
    assert key == "b" and models["b"] == {"sugarcrepe": {"overall": 0.6}}
    with pytest.raises(ValueError, match="covers several models \\(a, b\\); say which one"):
        split_report({"a": ONE_MODEL, "b": ONE_MODEL})
    with pytest.raises(ValueError, match="has no model 'c'; it has: a"):
        split_report({"a": ONE_MODEL}, "c")
    with pytest.raises(ValueError, match="must be \\{benchmark: \\{metric: value\\}\\}"):
        split_report({"sugarcrepe": 0.7})


def test_space_card_front_matter_round_trips():
    card = render_space_card(models=["me/tripletclip", "./local-folder"], sdk_version="6.31.0",
                             model_labels={"TripletCLIP": "me/tripletclip"},
                             limits={"max_megapixels": 20, "max_upload_mb": 10, "max_captions": 8,
                                     "max_caption_chars": 200})
    assert isinstance(card, SpaceCard)
    meta = front_matter(card)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == "6.31.0" and meta["app_file"] == "app.py"
    assert meta["models"] == ["me/tripletclip"] and meta["license"] == "apache-2.0"
    assert SpaceCard(str(card)).data.to_dict() == card.data.to_dict()
    assert "| TripletCLIP | `me/tripletclip` |" in card.text and "up to 8 captions" in card.text


def test_templates_are_found_in_the_checkout_and_as_package_data(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    checkout = template_path("model_card.md")
    assert checkout.parent.name == "model_cards" and checkout.is_file()
    # Installed from a wheel there is no checkout beside the package: the templates must be in the wheel, as the
    # `model_cards` data package. Build the wheel, install it into an empty folder, and look them up from a process
    # that sees only that folder.
    import shutil

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "modeling_tripletclip", "dataset_builders", "model_cards"):
        copy = shutil.copytree if (repo / name).is_dir() else shutil.copy2
        copy(repo / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (repo / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("tripletclip-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"model_cards/{n}" for n in ("model_card.md", "space_card.md", "dataset_card.md")} <= names
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import model_cards; "
              "print('\\n'.join(str(model_cards.template_path(n)) for n in sys.argv[2:]))")
    found = subprocess.run([sys.executable, "-c", script, str(site), "model_card.md", "space_card.md",
                            "dataset_card.md"], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    assert [Path(p) for p in found] == [site / "model_cards" / n for n in ("model_card.md", "space_card.md",
                                                                           "dataset_card.md")]
    with pytest.raises(FileNotFoundError, match="No card template 'nope.md'"):
        template_path("nope.md")
