"""`tripletclip synthesize` beyond one process: the LLM behind a real OpenAI-compatible server (`transformers serve`),
the Slurm executor's job array (its sbatch scripts as text, then each array task run here as Slurm would run it),
and the local executor's workers (1 or 2: the same rows)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_synthesis_runner import captions_file, rows_by_id, t2i_flags
from test_synthesis_tiny_models import built, single_thread  # noqa: F401  (fixture)

from dataset_builders.synthesis.cli import main as synthesis_main
from dataset_builders.synthesis.llm import clean_output, validate_negative_caption
from dataset_builders.synthesis.plan import PIPELINE_DIR, STATE_DIR
from dataset_builders.synthesis.prompts import negative_caption_prompt

CAPTIONS = [f"A {colour} {animal} sitting on a {size} table." for colour in ("red", "blue", "green")
            for animal in ("dog", "cat") for size in ("small", "large")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp()
    return {name: built(name, root) for name in ("causal_lm", "sd")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    """`transformers serve` on the tiny causal LM (CPU): a real OpenAI-compatible server."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(models["causal_lm"]), "--device",
               "cpu", "--port", str(port), "--host", "127.0.0.1", "--format", "quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("transformers serve did not come up in 180 s: " + log.read_text()[-3000:])
    yield url
    process.kill()
    process.wait()


def test_captions_from_an_openai_compatible_server_go_through_the_same_cleaning_and_validation(models, server,
                                                                                                tmp_path):
    data = captions_file(tmp_path / "c.jsonl", CAPTIONS)
    out = tmp_path / "served"
    flags = ["synthesize", "--dataset", str(data), "--caption_column", "caption", "--llm", str(models["causal_lm"]),
             "--llm_server", "endpoint", "--llm_endpoint", f"{server}/v1", "--max_new_tokens", "12",
             "--max_retries", "0", "--min_length_ratio", "0", "--max_length_ratio", "3", *t2i_flags(models),
             "--rows_per_shard", "4", "--no_progress", "--output_dir", str(out)]
    assert synthesis_main(flags) == 0
    written = rows_by_id(out)
    rejected = {}
    for path in (out / STATE_DIR / "shards").glob("*.json"):
        rejected.update(json.loads(path.read_text())["rejected"])

    # Independently: ask the server ourselves, greedy, and apply the documented cleaning and validation.
    for row, caption in enumerate(CAPTIONS):
        response = httpx.post(f"{server}/v1/chat/completions", timeout=120, json={
            "model": str(models["causal_lm"]), "max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "seed": 0,
            "messages": [{"role": "user", "content": negative_caption_prompt(caption)}]}).json()
        answer = response["choices"][0]["message"]["content"]
        cleaned = clean_output(answer)
        reason = validate_negative_caption(cleaned, caption, 0.0, 3.0)
        if reason is None:
            assert written[str(row)]["negative_caption"] == " ".join(cleaned.split()), row
            assert written[str(row)]["negative_kind"] == "llm"
        else:
            assert rejected[str(row)]["reason"] == reason and rejected[str(row)]["outputs"] == [answer], row
    assert len(written) + len(rejected) == len(CAPTIONS) and written  # some of each kind is not required


def test_an_endpoint_that_does_not_answer_is_refused_before_any_model_loads(models, tmp_path, capsys):
    data = captions_file(tmp_path / "c.jsonl", CAPTIONS[:2])
    code = synthesis_main(["synthesize", "--dataset", str(data), "--caption_column", "caption", "--llm", "tiny",
                           "--llm_server", "endpoint", "--llm_endpoint", f"http://127.0.0.1:{_free_port()}/v1",
                           "--t2i", "/nowhere", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "does not answer" in err and "--llm_endpoint" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--executor", "slurm"], "--partition"),
    (["--executor", "slurm", "--partition", "gpu"], "sbatch"),
    (["--llm_server", "vllm", "--llm", "m"], "pip install -e '.[vllm]'"),
    (["--llm_server", "endpoint", "--llm", "m"], "--llm_endpoint URL"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_an_executor_or_server_that_cannot_start_here_is_one_clear_error(flags, message, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    data = captions_file(tmp_path / "c.jsonl", CAPTIONS[:2])
    extra = [] if "--llm" in flags else ["--rules"]
    code = synthesis_main(["synthesize", "--dataset", str(data), "--caption_column", "caption", *extra, *flags,
                           "--t2i", "/nowhere", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def _fake_sbatch(folder: Path) -> Path:
    """An `sbatch` that keeps each script it is given (with its arguments) and answers as Slurm does, and the
    `scontrol` a task calls: the scheduler is the one edge replaced (there is no Slurm here)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "sbatch"
    script.write_text("#!/bin/sh\nn=$(ls \"$(dirname \"$0\")\"/submitted-*.sh 2>/dev/null | wc -l)\n"
                      "for last; do :; done\ncp \"$last\" \"$(dirname \"$0\")/submitted-$n.sh\"\n"
                      "echo \"$@\" > \"$(dirname \"$0\")/submitted-$n.args\"\necho \"Submitted batch job 10$n\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    hosts = folder / "scontrol"  # `scontrol show hostnames NODELIST`, as a task asks for its nodes
    hosts.write_text("#!/bin/sh\necho localhost\n")
    hosts.chmod(hosts.stat().st_mode | stat.S_IEXEC)
    return folder


def test_the_slurm_executor_submits_one_array_task_per_shard_and_a_finishing_job(models, tmp_path, monkeypatch):
    bin_dir = _fake_sbatch(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    data = captions_file(tmp_path / "c.jsonl", CAPTIONS)
    out = tmp_path / "slurm"
    flags = ["synthesize", "--dataset", str(data), "--caption_column", "caption", "--rules", *t2i_flags(models),
             "--rows_per_shard", "4", "--seed", "3", "--no_progress", "--executor", "slurm", "--partition", "gpu",
             "--gpus_per_task", "1", "--cpus_per_task", "8", "--time", "02:00:00", "--workers", "2",
             "--env_command", "source /opt/venv/bin/activate", "--output_dir", str(out)]
    assert synthesis_main(flags) == 0
    array = (bin_dir / "submitted-0.sh").read_text()
    for line in ["#SBATCH --partition=gpu", "#SBATCH --array=0-2%2", "#SBATCH --gpus=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --time=02:00:00", "#SBATCH --requeue", "source /opt/venv/bin/activate",
                 f"launch_pickled_pipeline {out / PIPELINE_DIR}/executor.pik"]:
        assert line in array, (line, array)
    finishing = [path for path in sorted(bin_dir.glob("submitted-*.sh"))
                 if f"launch_pickled_pipeline {out / PIPELINE_DIR}-finish/executor.pik" in path.read_text()]
    assert len(finishing) == 1  # after the array (job 100) has succeeded
    assert "--dependency=afterok:100" in finishing[0].with_suffix(".args").read_text()
    assert not (out / "data").exists() or not any((out / "data").iterdir())  # nothing ran here

    # What Slurm then runs: each array task, then the finishing job (here one after another, on this machine).
    env = {**os.environ, "SLURM_NODELIST": "localhost", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for task in range(3):
        done = subprocess.run(["launch_pickled_pipeline", str(out / PIPELINE_DIR / "executor.pik")],
                              env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run(["launch_pickled_pipeline", str(out / f"{PIPELINE_DIR}-finish" / "executor.pik")],
                          env={**env, "SLURM_ARRAY_TASK_ID": "0"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / STATE_DIR / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == len(CAPTIONS)

    reference = tmp_path / "local"  # the same command on the local executor: the same rows, byte for byte
    local = [f for f in flags if f not in ("slurm",)]
    local = local[:local.index("--executor")] + ["--output_dir", str(reference)]
    assert synthesis_main(local) == 0
    for name in sorted(p.name for p in (reference / "data").iterdir()):
        assert (out / "data" / name).read_bytes() == (reference / "data" / name).read_bytes(), name


SAME_BYTES_FLAGS = ["--caption_column", "caption", "--rules", "--rows_per_shard", "3", "--seed", "5", "--no_progress"]


def _synthesize(models, data: Path, out: Path, *extra: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "dataset_builders.synthesis.cli", "synthesize", "--dataset",
                           str(data), *SAME_BYTES_FLAGS, *t2i_flags(models), *extra, "--output_dir", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _same_shards(a: Path, b: Path, count: int = 4) -> None:
    names = sorted(p.name for p in (a / "data").iterdir())
    assert len(names) == count and names == sorted(p.name for p in (b / "data").iterdir())
    for name in names:
        assert (a / "data" / name).read_bytes() == (b / "data" / name).read_bytes(), name


@pytest.fixture(scope="module")
def one_worker(models, tmp_path_factory) -> tuple[Path, Path]:
    """The input and the output of a one-worker run on the local executor: what every other way must write."""
    folder = tmp_path_factory.mktemp("one-worker")
    data = captions_file(folder / "c.jsonl", CAPTIONS)
    _synthesize(models, data, folder / "out", "--workers", "1")
    return data, folder / "out"


def test_one_and_two_workers_write_the_same_bytes(models, one_worker, tmp_path):
    data, reference = one_worker
    _synthesize(models, data, tmp_path / "two", "--workers", "2")
    _same_shards(tmp_path / "two", reference)


def test_the_ray_executor_on_a_local_ray_instance_writes_the_same_bytes(models, one_worker, tmp_path):
    """`--executor ray` with no cluster address: Ray starts a local instance (and stops it with the run)."""
    data, reference = one_worker
    _synthesize(models, data, tmp_path / "ray", "--executor", "ray", "--workers", "2")
    _same_shards(tmp_path / "ray", reference)
    assert json.loads((tmp_path / "ray" / STATE_DIR / "manifest.json").read_text())["complete"]
