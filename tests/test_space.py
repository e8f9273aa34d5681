"""The Gradio Space (spaces/app.py): its functions, the app served on 127.0.0.1 and driven with gradio_client, and
the staged Space folder run on its own, without our package installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

SPACES = Path(__file__).resolve().parents[1] / "spaces"


def load_app(path: Path = SPACES / "app.py", name: str = "tripletclip_space_app"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app():
    return load_app()


@pytest.fixture(scope="module")
def specs(app, tiny_checkpoint, tiny_clip_checkpoint):
    return [app.ModelSpec("TripletCLIP", str(tiny_checkpoint)), app.ModelSpec("CLIP baseline", str(tiny_clip_checkpoint))]


@pytest.fixture(scope="module")
def cache(app):
    return app.ModelCache()


def expected_scores(model, processor, image, captions):
    """Independently: cosine of the normalised projected embeddings, softmax of exp(logit_scale) * cosine."""
    with torch.no_grad():
        text = model.get_text_features(**processor(text=captions, return_tensors="pt", padding=True)).pooler_output
        picture = model.get_image_features(**processor(images=[image], return_tensors="pt")).pooler_output
    cosine = (torch.nn.functional.normalize(picture, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).t())[0]
    return (model.logit_scale.exp() * cosine).softmax(dim=-1), cosine


# ------------------------------------------------------------------------------------------------ functions


def test_scores_of_both_models_match_an_independent_computation(app, specs, cache, test_data, tiny_clip_checkpoint,
                                                                tiny_model_and_processor):
    from transformers import CLIPModel

    photo = test_data / "images" / "horse.png"  # RGBA: must be converted
    captions = ["a black horse on a white background", "a white horse on a black background"]
    result = app.score(str(photo), "\n".join(captions) + "\n\n" + captions[0], specs, cache)
    assert result["captions"] == captions and result["messages"] == []
    model, processor = tiny_model_and_processor
    image = Image.open(photo).convert("RGB")
    for label, reference in (("TripletCLIP", model), ("CLIP baseline", CLIPModel.from_pretrained(tiny_clip_checkpoint))):
        probabilities, cosine = expected_scores(reference, processor, image, captions)
        torch.testing.assert_close(torch.tensor(result["models"][label]["probabilities"]), probabilities,
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.tensor(result["models"][label]["cosine"]), cosine, atol=1e-5, rtol=0)
    assert result["models"]["TripletCLIP"]["cosine"] != result["models"]["CLIP baseline"]["cosine"]


def test_inputs_out_of_bounds_get_friendly_messages(app, tmp_path, monkeypatch, test_data):
    with pytest.raises(app.InputError, match="at least one caption"):
        app.parse_captions(" \n  \n")
    with pytest.raises(app.InputError, match="9 captions is too many: at most 8"):
        app.parse_captions("\n".join(f"caption {i}" for i in range(9)))
    with pytest.raises(app.InputError, match="limited to 200 characters; this one has 201"):
        app.parse_captions("x" * 201)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    with pytest.raises(app.InputError, match="not an image this Space can read"):
        app.load_image({"path": str(not_an_image), "orig_name": "notes.png"})
    with pytest.raises(app.InputError, match="Upload an image"):
        app.load_image(None)
    monkeypatch.setitem(app.LIMITS, "max_megapixels", 0.1)  # the photo is 512x512: refused from its header
    with pytest.raises(app.InputError, match=r"512x512 pixels .* the limit is 0.1 megapixels"):
        app.load_image(str(test_data / "images" / "astronaut.png"))
    monkeypatch.setitem(app.LIMITS, "max_upload_mb", 0.1)
    with pytest.raises(app.InputError, match=r"The file is 0.8 MB; upload an image of at most 0.1 MB"):
        app.load_image(str(test_data / "images" / "astronaut.png"))


def test_propose_appends_rule_based_hard_negatives(app):
    text, message = app.propose("a black horse on a white background")
    lines = text.splitlines()
    assert lines[0] == "a black horse on a white background" and len(lines) == 1 + app.PROPOSALS
    assert "a white horse on a black background" in lines  # swap_att
    assert "Proposed 3 hard negative(s)" in message
    full = "\n".join(f"a red cube number {i}" for i in range(8))
    assert app.propose(full) == (full, "Already 8 captions (the limit); remove some to add hard negatives.")
    assert "No rule applies" in app.propose("xylophones everywhere")[1]
    assert "Write a caption first" in app.propose("")[1]


def test_models_come_from_env_then_config_file_then_the_default_checkpoint(app, tmp_path):
    assert app.configured_models({"TRIPLETCLIP_MODEL": "me/tc", "BASELINE_MODEL": "openai/clip-vit-base-patch32"},
                                 tmp_path) == [app.ModelSpec("TripletCLIP", "me/tc"),
                                               app.ModelSpec("CLIP baseline", "openai/clip-vit-base-patch32")]
    (tmp_path / "models").mkdir()
    (tmp_path / "models.json").write_text(json.dumps([{"label": "Ours", "model": "models"},
                                                      {"label": "CLIP", "model": "openai/clip-vit-base-patch32"}]))
    assert app.configured_models({}, tmp_path) == [app.ModelSpec("Ours", str(tmp_path / "models")),
                                                   app.ModelSpec("CLIP", "openai/clip-vit-base-patch32")]
    assert app.configured_models({}, tmp_path / "elsewhere") == [app.ModelSpec("TripletCLIP", str(app.DEFAULT_CHECKPOINT))]


def test_a_missing_model_is_a_message_not_a_crash(app, test_data, tmp_path):
    spec = app.ModelSpec("TripletCLIP", str(tmp_path / "not-trained-yet"))
    result = app.score(str(test_data / "images" / "chelsea.png"), "a cat\na dog", [spec], app.ModelCache())
    assert result["models"] == {}
    assert "no checkpoint at" in result["messages"][0] and "TRIPLETCLIP_MODEL" in result["messages"][0]


# ------------------------------------------------------------------------------------------------ served


def test_served_app_scores_and_keeps_serving_after_bad_uploads(app, specs, cache, test_data, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    demo = app.build_demo(specs, cache)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        captions = "a tabby cat with green eyes\na tabby cat with blue eyes"
        status, tripletclip, baseline, table = client.predict(
            handle_file(str(test_data / "images" / "chelsea.png")), captions, api_name="/score"
        )
        assert "**TripletCLIP** prefers" in status and "**CLIP baseline** prefers" in status
        for label in (tripletclip, baseline):
            confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
            assert set(confidences) == set(captions.splitlines())
            assert sum(confidences.values()) == pytest.approx(1, abs=1e-4)
        assert table["headers"][:3] == ["caption", "TripletCLIP probability", "TripletCLIP cosine"]
        assert [row[0] for row in table["data"]] == captions.splitlines()

        bad = tmp_path / "virus.png"
        bad.write_bytes(b"MZ\x90\x00 definitely not an image")
        with pytest.raises(AppError, match="not an image this Space can read"):
            client.predict(handle_file(str(bad)), captions, api_name="/score")
        with pytest.raises(AppError, match="too many"):
            client.predict(handle_file(str(test_data / "images" / "rocket.jpg")),
                           "\n".join(f"caption {i}" for i in range(12)), api_name="/score")
        # still serving
        status, *_ = client.predict(handle_file(str(test_data / "images" / "rocket.jpg")),
                                    "a rocket on a launch pad\na rocket next to a launch pad", api_name="/score")
        assert "prefers" in status
        text, message = client.predict("a black horse on a white background", api_name="/propose")
        assert "a white horse on a black background" in text and "Proposed" in message
    finally:
        demo.close()


STAGED_SPACE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    space = sys.argv[1]
    sys.modules["modeling_tripletclip"] = None  # a Space has transformers, not our package
    sys.modules["dataset_builders"] = None  # nor the data package
    sys.path.insert(0, space)
    os.chdir(space)
    import app  # as `python app.py` would, without launching
    assert app.propose_negatives.__module__ == "rules" and app.decode_image.__module__ == "images"
    assert len(app.propose("a black horse on a white background")[0].splitlines()) >= 2  # proposals work
    assert "datasets" not in sys.modules  # the data library is not needed either
    from gradio_client import Client, handle_file
    app.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(app.demo.local_url, verbose=False)
    result = client.predict(handle_file(os.path.join(space, "examples", "horse.png")),
                            "a black horse on a white background\\na white horse on a black background",
                            api_name="/score")
    app.demo.close()
    print(json.dumps({"specs": [s.label for s in app.configured_models()], "status": result[0],
                      "label": result[1]}))
    """
)


def test_staged_space_runs_on_its_own(tiny_checkpoint, tmp_path):
    from modeling_tripletclip.hub.push import stage_space

    staged = stage_space(SPACES, "me/demo", tmp_path / "space", model=str(tiny_checkpoint))
    script = tmp_path / "run_space.py"
    script.write_text(STAGED_SPACE_SCRIPT)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TRIPLETCLIP_MODEL", "BASELINE_MODEL")}
    done = subprocess.run([sys.executable, str(script), str(staged.path)], capture_output=True, text=True,
                          env={**env, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")},
                          cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["specs"] == ["TripletCLIP"]
    assert "**TripletCLIP** prefers" in result["status"]
    assert len(result["label"]["confidences"]) == 2
