"""The performance suite's quick mode runs end to end and writes well-formed results.

Only the outputs' structure is checked here: timings depend on the machine and its load and are never asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import TEST_DATA

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {"Training step", "Data pipeline", "Evaluation", "Memory"}
UNITS = {"ratio", "fraction", "MiB/triplet"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not (TEST_DATA / "sugarcrepe" / "add_att.json").is_file():
        raise FileNotFoundError(f"The SugarCrepe annotations are missing from {TEST_DATA / 'sugarcrepe'}.")
    tmp = tmp_path_factory.mktemp("perf")
    out = tmp / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.perf", "--quick", "--output_dir", str(out),
         "--cache_dir", str(tmp / "cache"), "--sugarcrepe", str(TEST_DATA / "sugarcrepe"), "--no_readme"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


@pytest.mark.slow
def test_quick_mode_writes_json_with_every_section_and_well_formed_figures(quick_run):
    out, _ = quick_run
    results = json.loads((out / "perf-quick.json").read_text())
    assert results["mode"] == "quick" and results["device"] == "cpu"
    assert results["gpu_measured"] is False and "not measured" in results["gpu_note"]
    assert len(results["load_average"]["start"]) == 3 and len(results["load_average"]["end"]) == 3
    assert results["environment"]["torch_threads"] == 1
    figures = results["figures"]
    assert {f["section"] for f in figures} == SECTIONS
    ids = [f["id"] for f in figures]
    assert len(ids) == len(set(ids))
    expected = {
        "train_step/tiny-B16-nockpt-cpu-fp32/vs_clip", "train_step/tiny-B16-nockpt-cpu-fp32/vs_two_pass",
        "train_step/tiny-B16-ckpt-cpu-fp32/vs_clip", "train_step/tiny-B16-ckpt-cpu-fp32/vs_two_pass",
        "data/train_wait_fraction", "data/reduced_decoding/score_change_in_standard_errors",
        "eval/sugarcrepe/tiny", "memory/tiny-B16-nockpt/per_triplet", "memory/tiny-B16-nockpt/vs_clip",
    }
    for source in ("world-tiny", "jpeg-500x375"):  # every candidate of the data path, on PNGs and on photos
        expected |= {f"data/{source}/{name}_vs_pil" for name in
                     ("collator_exact", "collator_training", "dataloader_1", "stream_0", "stream_1")}
        expected.add(f"data/{source}/two_workers_vs_one")
    assert expected <= set(ids)
    for f in figures:
        assert f["unit"] in UNITS
        assert isinstance(f["value"], float) and math.isfinite(f["value"]), f["id"]
        assert f["value"] > 0 or (f["id"].startswith("data/reduced_decoding/") and f["value"] == 0), f["id"]
        if f["goal"] is None:
            assert f["met"] is None
        else:
            assert f["goal_op"] in ("<=", ">=")
            assert f["met"] == (f["value"] <= f["goal_limit"] if f["goal_op"] == "<=" else f["value"] >= f["goal_limit"])
        if f["met"] is False:  # a missed goal comes with its profile (named relative to the results folder)
            assert f["profile"] and (out / f["profile"]).is_file() and (out / f["profile"]).stat().st_size > 0
        if f["unit"] == "ratio" and f["spread"] is not None:
            low, high = f["spread"]
            assert low <= f["value"] <= high or math.isclose(low, high)
    # Paired timings: every ratio figure of the training step has as many candidate as baseline repetitions.
    for f in figures:
        if f["section"] == "Training step":
            assert f["detail"]["repeats"] >= 2
            assert f["detail"]["candidate_median_s"] > 0 and f["detail"]["baseline_median_s"] > 0
    wait = next(f for f in figures if f["id"] == "data/train_wait_fraction")
    assert 0 < wait["value"] < 1 and wait["detail"]["num_workers"] == 0 and wait["detail"]["steps"] == 4
    evaluation = next(f for f in figures if f["id"] == "eval/sugarcrepe/tiny")
    assert evaluation["detail"]["items"] == 7 * 30  # the first 30 items of each of the seven real subsets
    memory = next(f for f in figures if f["id"] == "memory/tiny-B16-nockpt/vs_clip")
    assert memory["detail"]["tripletclip"]["parameters"] == memory["detail"]["clip"]["parameters"]


@pytest.mark.slow
def test_quick_mode_writes_markdown_tables_png_and_prints_them(quick_run):
    out, stdout = quick_run
    results = json.loads((out / "perf-quick.json").read_text())
    text = (out / "perf-quick.md").read_text()
    for section in SECTIONS:
        assert f"## {section}" in text
    assert "| figure | value | spread (IQR) | CPU-time ratio | goal | met |" in text
    for f in results["figures"]:
        assert f["label"] in text
    assert "not measured" in text  # GPU figures, on this CPU-only run
    with Image.open(out / "perf-quick.png") as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 200
    assert "# Performance suite results" in stdout and "perf-quick.json" in stdout
