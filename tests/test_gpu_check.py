"""The one-GPU check runs: its dry mode (the same steps at toy sizes on the CPU) writes gpu.json with every figure."""

from __future__ import annotations

import json

import pytest

from benchmarks.gpu_check import main


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    assert main(["--dry_run", "--output_dir", str(tmp_path / "results"), "--work_dir", str(tmp_path / "work")]) == 0
    results = json.loads((tmp_path / "results" / "gpu.json").read_text())
    assert results["dry_run"] is True
    step = results["step"]
    assert step["ours_samples_per_s"] > 0 and step["two_pass_samples_per_s"] > 0
    assert step["ratio"] == pytest.approx(step["ours_samples_per_s"] / step["two_pass_samples_per_s"])
    assert 0 <= results["data_wait"]["wait_fraction"] <= 1 and results["data_wait"]["num_workers"] == 2
    assert results["evaluation"]["images_per_s"] > 0 and results["evaluation"]["captions_per_s"] > 0
    assert results["evaluation"]["images"] > 0 and results["evaluation"]["captions"] > 0
    assert results["memory"]["note"]  # no GPU memory on the CPU, and it says so
    for name, run in results["runs"].items():
        assert run["passed"], (name, run["output_tail"])
    assert (tmp_path / "work" / "run" / "model.safetensors").is_file()  # the 2-step bf16 run saved its model


def test_gpu_check_without_a_gpu_says_how_to_run_it(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["--output_dir", "unused"]) == 2
    assert "--dry_run" in capsys.readouterr().err
