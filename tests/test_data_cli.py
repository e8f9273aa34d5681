"""`tripletclip data world | convert-webdataset | inspect`, run in-process through the `tripletclip` entry point."""

import json

import datasets
from PIL import Image

from dataset_builders import load_tripletdata
from dataset_builders.synthesis.rules import NEGATIVE_KINDS
from modeling_tripletclip.cli import main

SMALL = ["--num-test", "6", "--sugarcrepe-per-kind", "3", "--num-winoground", "7", "--num-retrieval", "4"]


def test_data_world_then_inspect(tmp_path, capsys, monkeypatch):
    out = tmp_path / "world"
    assert main(["data", "world", "--output_dir", str(out), "--num-train", "30", "--seed", "2", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "train/: TripletData, train 30 rows" in printed and "rows/s" in printed
    assert load_tripletdata(out / "train").num_rows == 30
    assert datasets.load_dataset(str(out / "winoground"), split="test").num_rows == 7
    assert {p.name for p in (out / "sugarcrepe").glob("*.json")} == {f"{k}.json" for k in NEGATIVE_KINDS}
    assert json.loads((out / "world.json").read_text())["config"]["seed"] == 2

    grid = tmp_path / "grid.png"
    assert main(["data", "inspect", "--dataset", str(out / "train"), "--grid", str(grid), "--rows", "3"]) == 0
    printed = capsys.readouterr().out
    assert "TripletData" in printed and "split train: 30 rows in 1 shard(s)" in printed
    assert "negative_image: image" in printed and str(grid) in printed
    assert Image.open(grid).height > 3 * 128

    monkeypatch.chdir(tmp_path)
    assert main(["data", "inspect", "--dataset", str(out / "retrieval")]) == 0
    assert "captions: list of string" in capsys.readouterr().out
    assert (tmp_path / "retrieval_sample_grid.png").is_file()
    assert main(["data", "inspect", "--dataset", str(out)]) == 0  # a whole world: every part summarised
    assert "sugarcrepe/: " in capsys.readouterr().out


def test_data_world_refuses_a_different_world_without_overwrite(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["data", "world", "--output_dir", str(out), "--num-train", "10", *SMALL]) == 0
    capsys.readouterr()
    assert main(["data", "world", "--output_dir", str(out), "--num-train", "12", *SMALL]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "world", "--output_dir", str(out), "--num-train", "12", "--overwrite_output_dir", *SMALL]) == 0
    assert load_tripletdata(out / "train").num_rows == 12


def test_convert_webdataset_and_inspect_errors(tmp_path, capsys):
    from test_data_webdataset import make_official_shards

    shards, good = make_official_shards(tmp_path / "shards")
    out = tmp_path / "converted"
    assert main(["data", "convert-webdataset", "--dataset", *map(str, shards), "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(good)} triplets" in printed and "1 undecodable image" in printed
    assert load_tripletdata(out).num_rows == len(good)

    assert main(["data", "convert-webdataset", "--dataset", str(tmp_path / "missing.tar"), "--output_dir", str(out)]) == 2
    assert "missing.tar" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "inspect", "--dataset", str(empty)]) == 2
    assert "not a dataset in the Hub layout" in capsys.readouterr().err
    assert main(["data", "inspect", "--dataset", str(tmp_path / "nowhere")]) == 2
    assert "No such folder" in capsys.readouterr().err
