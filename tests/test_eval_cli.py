"""`tripletclip evaluate`: several models and benchmarks in one run, the report files, and bad input."""

from __future__ import annotations

import json

import numpy as np

import pytest
from PIL import Image

from modeling_tripletclip.cli import main
from modeling_tripletclip.evaluation.cli import pair_benchmarks_with_data
from modeling_tripletclip.evaluation.errors import EvaluationInputError
from test_eval_benchmarks import (  # noqa: F401  (one_torch_thread is an autouse fixture)
    make_small_sugarcrepe,
    make_tripletdata,
    make_winoground,
    one_torch_thread,
)


def test_evaluate_two_models_three_benchmarks(tmp_path, tiny_checkpoint, tiny_clip_checkpoint, capsys):
    sugarcrepe = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    winoground = make_winoground(tmp_path / "winoground")
    triplets = make_tripletdata(tmp_path / "triplets")
    output = tmp_path / "out" / "report.json"
    models = [str(tiny_checkpoint), str(tiny_clip_checkpoint)]
    code = main([
        "evaluate", "--model", models[0], "--model", models[1],
        "--benchmark", "sugarcrepe", "--data", str(sugarcrepe),
        "--benchmark", "winoground", "--data", str(winoground),
        "--data", f"similarity={triplets}",
        "--output_dir", str(output.parent), "--report_name", output.stem, "--batch-size", "4", "--no-progress",
    ])
    printed = capsys.readouterr().out
    assert code == 0

    report = json.loads(output.read_text())["results"]
    assert list(report) == models
    for model in models:
        assert list(report[model]) == ["sugarcrepe", "winoground", "similarity"]
        assert set(report[model]["winoground"]) >= {"text", "image", "group", "swap_obj/group"}
        assert all(0 <= v <= 1 for b in ("sugarcrepe", "winoground") for v in report[model][b].values())
    assert report[models[0]] != report[models[1]]  # different weights, different numbers

    table = output.with_suffix(".md").read_text()
    assert table.splitlines()[0] == f"| benchmark | metric | {models[0]} | {models[1]} |"
    assert "overall = unweighted mean of the seven subset accuracies" in table
    assert f"| winoground | group | {100 * report[models[0]]['winoground']['group']:.2f} |" in table
    assert table in printed and "scored 7 of 7 items" in printed

    png = output.with_name("report_similarity.png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 500
    numbers = json.loads(output.with_name("report_similarity.json").read_text())
    assert set(numbers["histograms"]) == {"bin_edges", *models}
    assert sum(numbers["histograms"][models[0]]["image_similarity"]) == 8
    assert numbers["summary"][models[1]] == report[models[1]]["similarity"]


def test_unknown_benchmark_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "m", "--benchmark", "imagenet", "--data", "x"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'imagenet'" in error
    assert "sugarcrepe" in error and "similarity" in error


def test_bad_input_stops_before_any_model_runs(tmp_path, tiny_checkpoint, capsys):
    from transformers import BertConfig

    sugarcrepe = make_small_sugarcrepe(tmp_path / "sugarcrepe")
    output = tmp_path / "report.json"
    # A benchmark without its data.
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--benchmark", "sugarcrepe", "--benchmark",
                 "winoground", "--data", str(sugarcrepe), "--output_dir", str(output.parent), "--report_name", output.stem])
    assert code == 2 and "Got 1 --data path(s) for 2 benchmark(s)" in capsys.readouterr().err
    # A model that is not CLIP-like, named after the data has been checked.
    BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8).save_pretrained(tmp_path / "bert")
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--model", str(tmp_path / "bert"),
                 "--benchmark", "sugarcrepe", "--data", str(sugarcrepe), "--output_dir", str(output.parent), "--report_name", output.stem])
    assert code == 2 and "not a CLIP-like model" in capsys.readouterr().err
    # A missing image named by the JSON.
    (sugarcrepe / "images" / "d.jpg").unlink()
    code = main(["evaluate", "--model", str(tiny_checkpoint), "--benchmark", "sugarcrepe", "--data", str(sugarcrepe),
                 "--output_dir", str(output.parent), "--report_name", output.stem])
    assert code == 2 and "d.jpg (named by add_obj.json['0'])" in capsys.readouterr().err
    assert not output.exists()


def test_pairing_benchmarks_with_data():
    assert pair_benchmarks_with_data(["sugarcrepe", "winoground"], ["a", "b"]) == {"sugarcrepe": "a", "winoground": "b"}
    assert pair_benchmarks_with_data(["winoground"], ["zeroshot=z", "w"]) == {"winoground": "w", "zeroshot": "z"}
    assert pair_benchmarks_with_data([], ["retrieval=r=1"]) == {"retrieval": "r=1"}
    with pytest.raises(EvaluationInputError, match="more than once"):
        pair_benchmarks_with_data(["winoground", "winoground"], ["a", "b"])
    with pytest.raises(EvaluationInputError, match="at least one benchmark"):
        pair_benchmarks_with_data([], [])


def test_evaluate_on_the_built_in_world(tmp_path, tiny_checkpoint, tiny_clip_checkpoint, capsys):
    from dataset_builders.world.generate import generate_world

    world = generate_world(tmp_path / "world", num_train=16, num_test=12, sugarcrepe_per_kind=6, num_winoground=8,
                           num_retrieval=8, image_size=32, progress=False)
    output = tmp_path / "report.json"
    models = [str(tiny_checkpoint), str(tiny_clip_checkpoint)]
    code = main(["evaluate", "--model", models[0], "--model", models[1], "--world", str(world),
                 "--output_dir", str(output.parent), "--report_name", output.stem, "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(output.read_text())["results"]
    for model in models:
        assert list(report[model]) == ["sugarcrepe", "winoground", "retrieval", "tripletdata", "similarity"]
        assert "overall" in report[model]["sugarcrepe"]
        assert "image_retrieval_recall@5" in report[model]["retrieval"]
        assert "image_retrieval_recall@10" not in report[model]["retrieval"]  # 8 images: recall@10 does not apply
    assert "sugarcrepe: scored 42 of 42 items" in printed and "tripletdata: scored 12 of 12 items" in printed
    assert output.with_name("report_similarity.png").is_file()


def test_compositional_suite_runs_what_it_finds_side_by_side(tmp_path, tiny_checkpoint, tiny_clip_checkpoint, capsys):
    import huggingface_hub  # noqa: F401

    from test_eval_bivlc import make_bivlc
    from test_eval_colorswap import make_colorswap
    from test_eval_mmvp import make_mmvp

    root = tmp_path / "benchmarks"
    make_bivlc(root / "BiVLC")
    make_colorswap(root / "colorswap")
    make_mmvp(root / "MMVP_VLM")
    models = [str(tiny_checkpoint), str(tiny_clip_checkpoint)]
    code = main(["evaluate", "--model", models[0], "--model", models[1], "--benchmark", "compositional",
                 "--data_root", str(root), "--output_dir", str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "found under" in printed and "absent: sugarcrepe, winoground, sugarcrepe_pp, aro, valse, whatsup" in printed
    assert "compositional average = unweighted mean" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for model in models:
        results = report["results"][model]
        assert set(results) == {"bivlc", "colorswap", "mmvp", "compositional"}
        headline = np.mean([results["bivlc"]["group"], results["colorswap"]["group"], results["mmvp"]["average"]])
        # Three of nine benchmarks: a partial average, never called the average.
        assert results["compositional"] == {"partial_average": pytest.approx(headline)}
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert all(m in markdown for m in models)  # the models side by side
    assert main(["evaluate", "--model", models[0], "--benchmark", "compositional", "--output_dir", str(tmp_path)]) == 2
    assert "--data_root" in capsys.readouterr().err
