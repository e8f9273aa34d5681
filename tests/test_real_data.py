"""Real formats in, through faithful offline replicas: the released TripletData (by Hub id, local copy and shard glob)
everywhere TripletData is accepted, CLIP_benchmark's WebDataset exports, facebook/winoground, list-of-captions
retrieval sets, and the reporting rules that keep a partial or inapplicable number from passing as a full one.

Only the network edge is replaced: `datasets.load_dataset` (or `huggingface_hub.snapshot_download`) for a Hub id is
pointed at the replica; everything after it is the real code.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from safetensors.torch import load_file

from modeling_tripletclip.cli import main as cli
from test_eval_benchmarks import direct_image, direct_text, one_torch_thread, tiny  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
HUB_ID = "TripletCLIP/TripletCLIP-High-Quality"


# ------------------------------------------------------------------------------------------------ the replica


def photo_jpeg(seed: int, size: tuple[int, int] = (500, 375)) -> bytes:
    """A photo-like JPEG (smooth colour gradients, some texture) of CC3M's typical size, quality 90."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0, 255, 3) + rng.uniform(-120, 120, (2, 3))[0] * x[..., None] \
        + rng.uniform(-120, 120, 3) * y[..., None]
    pixels = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_released_replica(root: Path, num_shards: int = 3, per_shard: int = 6) -> tuple[Path, dict]:
    """The released TripletData as `hf download --repo-type dataset TripletCLIP/TripletCLIP-High-Quality
    --local-dir ROOT` leaves it: README.md, .gitattributes, the download cache, and WebDataset tar shards under data/
    (written with the `webdataset` package). Each sample: `.image`, `.neg_image` (500x375 JPEGs), `.caption`,
    `.neg_caption` (UTF-8). Shard 0 holds one truncated JPEG (sample 1) and one sample without `.neg_caption`
    (sample 3), both among the first five samples, as datasets' type inference reads them. Returns the root and the
    good samples by key."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / ".cache" / "huggingface" / "download").mkdir(parents=True, exist_ok=True)
    (root / ".cache" / "huggingface" / "download" / "shard-00000.tar.metadata").write_text("0123abc\n")
    (root / "README.md").write_text("---\nlicense: apache-2.0\ntask_categories:\n- zero-shot-image-classification\n---\n")
    (root / ".gitattributes").write_text("*.tar filter=lfs diff=lfs merge=lfs -text\n")
    good = {}
    for s in range(num_shards):
        with wds.TarWriter(str(root / "data" / f"shard-{s:05d}.tar"), encoder=False) as sink:
            for i in range(per_shard):
                key = f"{s:03d}{i:06d}"
                sample = {"__key__": key, "image": photo_jpeg(10 * s + i), "neg_image": photo_jpeg(1000 + 10 * s + i),
                          "caption": f"a photo of a dog number {s} {i}".encode(),
                          "neg_caption": f"a photo of a cat number {s} {i}".encode()}
                if s == 0 and i == 1:
                    sample["image"] = sample["image"][: len(sample["image"]) // 3]
                elif s == 0 and i == 3:
                    del sample["neg_caption"]
                else:
                    good[key] = sample
                sink.write(sample)
    return root, good


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return make_released_replica(tmp_path_factory.mktemp("released") / "TripletCLIP-High-Quality")


@pytest.fixture
def hub(monkeypatch, replica):
    """The Hub id served from the replica: only `datasets.load_dataset`'s network edge is replaced."""
    root, _ = replica
    real = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        return real(str(root) if path == HUB_ID else path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return HUB_ID


def forms(replica) -> dict[str, str]:
    root, _ = replica
    return {"hub id": HUB_ID, "folder": str(root), "glob": str(root / "data" / "shard-*.tar")}


SKIPPED = {"undecodable image": 1, "empty negative caption": 1}


# ------------------------------------------------------------------------------------------------ TripletData


def test_load_tripletdata_reads_the_three_forms_alike(hub, replica):
    from dataset_builders.sources import load_tripletdata, resolve_dataset

    assert resolve_dataset(HUB_ID).kind == "Hub dataset id"
    assert resolve_dataset(str(replica[0])).kind == resolve_dataset(forms(replica)["glob"]).kind == "WebDataset shards"
    keys = {}
    for name, value in forms(replica).items():
        for streaming in (True, False):
            dataset = load_tripletdata(value, streaming=streaming)
            assert {"image", "caption", "negative_image", "negative_caption"} <= set(dataset.features)
            keys[name, streaming] = [row["__key__"] for row in dataset]
    assert len(set(map(tuple, keys.values()))) == 1  # the same rows in the same order
    assert len(next(iter(keys.values()))) == 18
    braces = str(replica[0] / "data" / "shard-{00000..00002}.tar")
    assert [r["__key__"] for r in load_tripletdata(braces, streaming=True)] == keys["hub id", True]


def train_flags(value: str, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", value, "--model_name_or_path", str(checkpoint), "--output_dir", str(out),
            "--train_batch_size", "4", "--max_train_steps", "3", "--logging_steps", "1", "--report_to", "jsonl",
            "--eval_benchmarks", "", "--seed", "0", *extra]


def last_record(out: Path) -> dict:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            if "train/loss" in line][-1]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "map-style"])
def test_training_on_the_released_data_by_hub_id_folder_and_glob(hub, replica, tiny_checkpoint, tmp_path, streaming):
    from modeling_tripletclip.training import main as train_main

    extra = ["--streaming"] if streaming else []
    trained = {}
    for name, value in forms(replica).items():
        out = tmp_path / name.replace(" ", "-")
        result = train_main(train_flags(value, tiny_checkpoint, out, *extra))
        assert result.steps == 3
        trained[name] = load_file(out / "model.safetensors")
        if streaming:  # read in order: both bad samples come first, counted and replaced
            assert result.skipped == SKIPPED and last_record(out)["train/skipped_rows"] == 2
    reference = trained["hub id"]
    for name, weights in trained.items():  # the same rows in the same order give the same weights, bit for bit
        assert all(torch.equal(weights[k], reference[k]) for k in reference), name


LAUNCHER = """
import sys
import datasets

real = datasets.load_dataset
root = sys.argv[1]
datasets.load_dataset = lambda path, *a, **k: real(root if path == "{hub_id}" else path, *a, **k)

from modeling_tripletclip.training import main
main(sys.argv[2:])
"""


@pytest.mark.slow
def test_two_processes_train_on_the_three_forms(replica, tiny_checkpoint, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.replace("{hub_id}", HUB_ID))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    trained = {}
    for name, value in forms(replica).items():
        out = tmp_path / name.replace(" ", "-")
        done = subprocess.run([*launch, str(script), str(replica[0]), *train_flags(value, tiny_checkpoint, out,
                                                                                   "--streaming")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert last_record(out)["train/skipped_rows"] == 2  # both bad samples, whichever process read them
        trained[name] = load_file(out / "model.safetensors")
    reference = trained["hub id"]
    for name, weights in trained.items():
        assert all(torch.equal(weights[k], reference[k]) for k in reference), name


def test_inspect_convert_evaluate_and_push_accept_the_three_forms(hub, replica, tiny_checkpoint, tmp_path, capsys):
    from dataset_builders.sources import load_tripletdata
    from modeling_tripletclip.hub.push import stage_dataset

    _, good = replica
    converted_ids, metrics = {}, {}
    for name, value in forms(replica).items():
        slug = name.replace(" ", "-")
        assert cli(["data", "inspect", "--dataset", value, "--output_dir", str(tmp_path / slug)]) == 0
        assert "TripletData" in capsys.readouterr().out and any((tmp_path / slug).glob("*_sample_grid.png"))

        out = tmp_path / f"converted-{slug}"
        assert cli(["data", "convert-webdataset", "--dataset", value, "--output_dir", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"{len(good)} triplets" in printed and "1 undecodable image" in printed
        converted_ids[name] = [i.split("/")[1] for i in load_tripletdata(out)["id"]]

        report_dir = tmp_path / f"report-{slug}"
        command = ["evaluate", "--model", str(tiny_checkpoint), "--benchmark", "tripletdata", "--data", value,
                   "--output_dir", str(report_dir), "--no_progress"]
        assert cli(command) == 1  # two triplets could not be scored: said, and not a success
        assert "SKIPPED" in capsys.readouterr().err
        assert cli([*command, "--allow_skipped"]) == 0
        report = json.loads((report_dir / "report.json").read_text())
        assert report["counts"][str(tiny_checkpoint)]["tripletdata"] == {"items": 18, "scored": 16, "skipped": 2}
        metrics[name] = report["results"][str(tiny_checkpoint)]["tripletdata"]

        staged = stage_dataset(value, "me/tripletdata", tmp_path / f"staged-{slug}")
        assert (staged.path / "README.md").is_file() and not (staged.path / ".conversion").exists()
        assert datasets.load_dataset(str(staged.path), split="train").num_rows == len(good)
    assert all(ids == list(good) for ids in converted_ids.values())
    assert metrics["hub id"] == metrics["folder"] == metrics["glob"]


def test_a_value_of_no_known_form_says_what_was_looked_for(tmp_path):
    from dataset_builders.sources import DatasetSourceError, resolve_dataset

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    (tmp_path / "notes" / "b.md").write_text("x")
    with pytest.raises(DatasetSourceError, match=r"holds 1 \.md, 1 \.txt.*Looked for: a folder in the Hub layout"):
        resolve_dataset(tmp_path / "notes")
    with pytest.raises(DatasetSourceError, match="No file matches"):
        resolve_dataset(str(tmp_path / "shard-*.tar"))
    with pytest.raises(DatasetSourceError, match="No such folder or file"):
        resolve_dataset(str(tmp_path / "nowhere" / "x"))


# ------------------------------------------------------------------------------------------------ CLIP_benchmark

CLASSNAMES = ["dog", "cat", "horse"]


def make_clip_benchmark(root: Path, task: str, test_data: Path) -> tuple[Path, list]:
    """An export of CLIP_benchmark's `clip_benchmark_export_wds`: test/{0,1}.tar + test/nshards.txt; classification
    samples `.webp` (lossless) + `.cls`, with classnames.txt and zeroshot_classification_templates.txt; retrieval
    samples `.jpg` + `.txt` (captions one per line), with dataset_type.txt."""
    photos = ["chelsea.png", "horse.png", "astronaut.png", "coffee.png", "rocket.jpg"]
    (root / "test").mkdir(parents=True)
    samples = []
    for shard in range(2):
        with wds.TarWriter(str(root / "test" / f"{shard}.tar"), encoder=False) as sink:
            for j, photo in enumerate(photos[shard * 3: shard * 3 + 3]):
                image = Image.open(test_data / "images" / photo).convert("RGB").resize((64, 48))
                buffer = io.BytesIO()
                if task == "classification":
                    image.save(buffer, format="WEBP", lossless=True)
                    label = (shard * 3 + j) % 3
                    sample = {"__key__": f"s{shard:04d}{j:04d}", "webp": buffer.getvalue(), "cls": str(label).encode()}
                    samples.append((image, label))
                else:
                    image.save(buffer, format="JPEG", quality=95)
                    captions = [f"a photo of a {photo.split('.')[0]}", f"a picture of the {photo.split('.')[0]}"]
                    sample = {"__key__": f"s{shard:04d}{j:04d}", "jpg": buffer.getvalue(),
                              "txt": "\n".join(captions).encode()}
                    samples.append((Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), captions))
                sink.write(sample)
    (root / "test" / "nshards.txt").write_text("2\n")
    if task == "classification":
        (root / "classnames.txt").write_text("\n".join(CLASSNAMES) + "\n")
        (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\nitap of the {c}.\n")
    else:
        (root / "dataset_type.txt").write_text("retrieval\n")
    return root, samples


def test_clip_benchmark_classification_export_with_its_own_templates(tmp_path, test_data, tiny, monkeypatch):
    import huggingface_hub

    from modeling_tripletclip.evaluation import evaluate_model_detailed

    model, processor = tiny
    root, samples = make_clip_benchmark(tmp_path / "wds_fake_classes", "classification", test_data)
    result = evaluate_model_detailed(model, processor, {"zeroshot": root}, progress=False)["zeroshot"]
    templates = ["a photo of a {}.", "itap of the {}."]
    classifier = []
    for name in CLASSNAMES:
        e = torch.stack([direct_text(model, processor, t.format(name)) for t in templates]).mean(0)
        classifier.append(e / e.norm())
    classifier = torch.stack(classifier)
    hits = [all((100 * direct_image(model, processor, image) @ classifier.T)[label] >
                (100 * direct_image(model, processor, image) @ classifier.T)[c] for c in range(3) if c != label)
            for image, label in samples]
    assert result.num_scored == 5 and result.metrics["top1"] == pytest.approx(sum(hits) / 5)
    assert "top5" not in result.metrics  # three classes: top-5 does not apply
    assert any("3 classes x 2 prompt templates" in note for note in result.notes)

    # By Hub id: the repository is downloaded (only huggingface_hub's network edge replaced).
    calls = []

    def snapshot_download(repo_id, repo_type=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, repo_type, allow_patterns))
        return str(root)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    by_id = evaluate_model_detailed(model, processor, {"zeroshot": "clip-benchmark/wds_fake_classes"},
                                    progress=False)["zeroshot"]
    assert by_id.metrics == result.metrics
    assert calls == [("clip-benchmark/wds_fake_classes", "dataset", ["*.txt", "test/*"])]


def test_clip_benchmark_retrieval_export(tmp_path, test_data, tiny):
    from modeling_tripletclip.evaluation import evaluate_model_detailed
    from test_eval_benchmarks import loop_recall

    model, processor = tiny
    root, samples = make_clip_benchmark(tmp_path / "wds_fake_captions", "retrieval", test_data)
    result = evaluate_model_detailed(model, processor, {"retrieval": root}, progress=False, ks=(1, 2, 5))["retrieval"]
    images = torch.stack([direct_image(model, processor, image) for image, _ in samples])
    captions = torch.stack([direct_text(model, processor, c) for _, cs in samples for c in cs])
    owners = [i for i, (_, cs) in enumerate(samples) for _ in cs]
    for k in (1, 2):
        image_recall, text_recall = loop_recall(images, captions, owners, k)
        assert result.metrics[f"image_retrieval_recall@{k}"] == pytest.approx(image_recall)
        assert result.metrics[f"text_retrieval_recall@{k}"] == pytest.approx(text_recall)
    assert "image_retrieval_recall@5" not in result.metrics  # five images: recall@5 does not apply
    assert result.metrics["text_retrieval_recall@5"] == pytest.approx(loop_recall(images, captions, owners, 5)[1])
    with pytest.raises(ValueError, match="CLIP_benchmark retrieval dataset: evaluate it with --benchmark retrieval"):
        evaluate_model_detailed(model, processor, {"zeroshot": root}, progress=False)


# ------------------------------------------------------------------------------------------------ the Hub's formats


def test_facebook_winoground_as_the_hub_serves_it(tmp_path, tiny, monkeypatch):
    from modeling_tripletclip.evaluation import evaluate_model
    from modeling_tripletclip.evaluation.metrics import winoground_metrics
    from test_eval_benchmarks import draw, png_bytes

    model, processor = tiny
    tags = ["Object", "Relation", "Both", "Relation", "Object", "Object"]
    rows = [{"id": i, "image_0": png_bytes(draw(2 * i)), "image_1": png_bytes(draw(2 * i + 1)),
             "caption_0": f"a red square above a blue circle {i}", "caption_1": f"a blue circle above a red square {i}",
             "tag": tags[i], "secondary_tag": "Symbolic" if i % 2 else "", "num_main_preds": 1 + i % 2,
             "collapsed_tag": tags[i]} for i in range(6)]
    features = datasets.Features({
        "id": datasets.Value("int32"), "image_0": datasets.Image(), "image_1": datasets.Image(),
        "caption_0": datasets.Value("string"), "caption_1": datasets.Value("string"), "tag": datasets.Value("string"),
        "secondary_tag": datasets.Value("string"), "num_main_preds": datasets.Value("int32"),
        "collapsed_tag": datasets.Value("string")})
    folder = tmp_path / "winoground"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda path, *a, **k: real(str(folder) if path == "facebook/winoground" else path, *a, **k))
    metrics = evaluate_model(model, processor, {"winoground": "facebook/winoground"}, progress=False)["winoground"]
    scores = np.array([[[float(direct_text(model, processor, r[c]) @ direct_image(model, processor, Image.open(
        io.BytesIO(r[i])))) for i in ("image_0", "image_1")] for c in ("caption_0", "caption_1")] for r in rows])
    assert metrics == pytest.approx(winoground_metrics(scores, tags=tags), abs=1e-6)
    assert {"Object/group", "Relation/text", "Both/image"} <= set(metrics)


def test_retrieval_set_with_a_list_of_captions_per_image(tmp_path, test_data, tiny, monkeypatch):
    from modeling_tripletclip.evaluation import evaluate_model
    from test_eval_benchmarks import PHOTO_CAPTIONS, loop_recall

    model, processor = tiny
    rows = [{"image": str(test_data / "images" / name), "caption": captions + captions[:1] * 3 + ["a photo"],
             "filename": name, "img_id": str(i)} for i, (name, captions) in enumerate(PHOTO_CAPTIONS.items())]
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.List(datasets.Value("string")),
                                  "filename": datasets.Value("string"), "img_id": datasets.Value("string")})
    folder = tmp_path / "flickr"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    hub_id = "nlphuji/flickr_1k_test_image_text_retrieval"
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda path, *a, **k: real(str(folder) if path == hub_id else path,
                                                                          *a, **k))
    metrics = evaluate_model(model, processor, {"retrieval": hub_id}, progress=False, ks=(1, 3))["retrieval"]
    images = torch.stack([direct_image(model, processor, Image.open(r["image"])) for r in rows])
    captions = torch.stack([direct_text(model, processor, c) for r in rows for c in r["caption"]])
    owners = [i for i, r in enumerate(rows) for _ in r["caption"]]
    for k in (1, 3):
        image_recall, text_recall = loop_recall(images, captions, owners, k)
        assert metrics[f"image_retrieval_recall@{k}"] == pytest.approx(image_recall)
        assert metrics[f"text_retrieval_recall@{k}"] == pytest.approx(text_recall)


# ------------------------------------------------------------------------------------------------ honest reports


def test_a_single_sugarcrepe_file_is_its_subset(tmp_path, tiny):
    from modeling_tripletclip.evaluation import evaluate_model
    from test_eval_benchmarks import make_small_sugarcrepe

    model, processor = tiny
    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    whole = evaluate_model(model, processor, {"sugarcrepe": folder}, progress=False)["sugarcrepe"]
    one = evaluate_model(model, processor, {"sugarcrepe": folder / "swap_att.json"}, images=folder / "images",
                         progress=False)["sugarcrepe"]
    assert one == {"swap_att": whole["swap_att"]}
    with pytest.raises(ValueError, match="not a SugarCrepe subset file"):
        evaluate_model(model, processor, {"sugarcrepe": tmp_path / "sugarcrepe" / "images" / "a.jpg"})


def test_skipped_items_are_counted_per_subset_and_make_the_run_fail_unless_allowed(tmp_path, tiny_checkpoint, capsys):
    from test_eval_benchmarks import make_small_sugarcrepe

    folder = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    (folder / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff not a jpeg any more")
    command = ["evaluate", "--model", str(tiny_checkpoint), "--benchmark", "sugarcrepe", "--data", str(folder),
               "--output_dir", str(tmp_path / "out"), "--no_progress"]
    assert cli(command) == 1
    err = capsys.readouterr().err
    assert "SKIPPED" in err and "--allow_skipped" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    counts = report["counts"][str(tiny_checkpoint)]["sugarcrepe"]
    assert counts["skipped"] == 3 and counts["subsets"]["replace_obj"] == {"items": 3, "scored": 1, "skipped": 2}
    assert counts["subsets"]["add_obj"] == {"items": 2, "scored": 1, "skipped": 1}
    assert any("items skipped" in note for note in report["notes"])
    table = (tmp_path / "out" / "report.md").read_text()
    assert "| sugarcrepe | 4/7 (3 skipped) |" in table
    assert cli([*command, "--allow_skipped"]) == 0


def test_the_tie_rule_is_stated_where_retrieval_semantics_are_named(capsys):
    with pytest.raises(SystemExit):
        cli(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a tie always counts against the model" in text and "CLIP_benchmark's `topk` on exact ties" in text
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "a tie counts against the model" in readme and "CLIP_benchmark's `topk`" in readme


def test_concept_coverage_of_the_released_data_by_hub_id(hub, tmp_path, capsys):
    # Every caption is "a photo of a dog number S I", every negative "a photo of a cat number S I"; sample 3 of
    # shard 0 has no negative caption, and the truncated image does not matter (no image is decoded).
    assert cli(["data", "coverage", "--dataset", hub, "--output_dir", str(tmp_path)]) == 0
    capsys.readouterr()
    table = json.loads((tmp_path / "coverage.json").read_text())
    assert table["rows"] == 18 and table["skipped"] == {"empty or missing negative caption": 1}
    assert table["captions"] == {"unique_synsets": 3, "occurrences": 3 * 18}
    assert table["negative_captions"] == {"unique_synsets": 3, "occurrences": 3 * 17, "shared_with_captions": 2,
                                          "added_synsets": 1, "added_occurrences": 17}
    assert table["top_added"] == [["cat.n.01", 17]]
