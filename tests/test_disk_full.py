"""A full disk (``OSError(ENOSPC)`` from the write that commits a checkpoint, a shard or a report): the job stops with
a message saying the disk is full and where, the previous state stays valid, and the rerun after space is freed
resumes to the result of an uninterrupted run. Only the library edge that writes (``torch.save``,
``pyarrow``'s parquet writer, ``os.replace``) is replaced."""

from __future__ import annotations

import errno
import json
import os

import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file

from benchmarks.faults.jobs import compare_rows, untrusted_shards
from dataset_builders.utils import atomic
from modeling_tripletclip.cli import main as tripletclip
from modeling_tripletclip.training.checkpoints import list_checkpoints
from modeling_tripletclip.training.cli import cli_main as train_accelerate


def full_disk(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def fail_on_call(original, number: int, match: str, target=lambda args: args[1]):
    """``original`` whose ``number``-th call with ``match`` in its target path fails as a full disk would."""
    calls = []

    def patched(*args, **kwargs):
        path = str(target(args))
        if match in path:
            calls.append(path)
            if len(calls) == number:
                raise full_disk(path)
        return original(*args, **kwargs)

    patched.calls = calls
    return patched


def train_flags(world, checkpoint, out, *extra):
    return ["--output_dir", str(out), "--model_name_or_path", str(checkpoint), "--world_dir", str(world),
            "--train_batch_size", "8", "--max_train_steps", "6", "--learning_rate", "1e-3", "--lr_warmup_steps",
            "2", "--checkpointing_steps", "3", "--logging_steps", "1", "--eval_benchmarks", "",
            "--eval_before_training", "false", "--report_to", "jsonl", "--seed", "0", *extra]


def test_checkpoint_on_a_full_disk(faults_inputs, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    world = faults_inputs.world
    reference = tmp_path / "reference"
    assert train_accelerate(train_flags(world, tiny_checkpoint, reference)) == 0
    out = tmp_path / "full"
    save = fail_on_call(torch.save, 2, "optimizer")  # the optimizer state of the second checkpoint
    monkeypatch.setattr(torch, "save", save)
    assert train_accelerate(train_flags(world, tiny_checkpoint, out)) == 2
    message = capsys.readouterr().err
    assert "disk is full" in message.lower() and "checkpoint-6" in message
    assert "checkpoint-3 is complete" in message and "--resume_from_checkpoint latest" in message
    assert len(save.calls) == 2
    # the previous checkpoint is the newest complete one, nothing half-written is listed, no final model
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-3"]
    assert not [p for p in out.rglob("*") if atomic.is_temporary(p)]
    assert not (out / "model.safetensors").exists()
    monkeypatch.undo()  # space freed
    assert train_accelerate(train_flags(world, tiny_checkpoint, out, "--resume_from_checkpoint", "latest")) == 0
    mine, expected = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert mine.keys() == expected.keys() and all(torch.equal(mine[k], expected[k]) for k in mine)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in line]
    assert steps == [1, 2, 3, 4, 5, 6]



def test_shard_on_a_full_disk(faults_inputs, tmp_path, monkeypatch, capsys):
    from dataset_builders.released_shards import CONVERSION_DIR

    shards = str(faults_inputs.shards)
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert tripletclip(["data", "convert-webdataset", "--dataset", shards, "--output_dir", str(reference)]) == 0
    original = pq.ParquetWriter.write_table
    write = fail_on_call(original, 2, "parquet", target=lambda args: getattr(args[0], "where", ""))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", write)
    assert tripletclip(["data", "convert-webdataset", "--dataset", shards, "--output_dir", str(out)]) == 2
    message = capsys.readouterr().err
    assert "disk is full" in message.lower() and "-of-" in message and "rerun the same command" in message
    # the first shard is written and recorded; nothing recorded is missing or short; no temporary is left
    assert len(list((out / CONVERSION_DIR).glob("[0-9]*.json"))) == 1
    assert untrusted_shards(out, CONVERSION_DIR, "rows") == []
    assert not [p for p in out.rglob("*") if atomic.is_temporary(p)]
    monkeypatch.undo()
    assert tripletclip(["data", "convert-webdataset", "--dataset", shards, "--output_dir", str(out)]) == 0
    assert compare_rows(out, reference) == (0, [])


def test_report_on_a_full_disk(faults_inputs, tmp_path, monkeypatch, capsys):
    command = ["evaluate", "--model", str(faults_inputs.checkpoint), "--world", str(faults_inputs.world),
               "--output_dir", str(tmp_path), "--no_progress", "--max_items", "8"]
    assert tripletclip(command) == 0
    before = (tmp_path / "report.json").read_bytes()
    capsys.readouterr()
    replace = fail_on_call(os.replace, 1, "report.json")
    monkeypatch.setattr(os, "replace", replace)
    assert tripletclip(command) == 2
    message = capsys.readouterr().err
    assert "disk is full" in message.lower() and "report.json" in message
    assert (tmp_path / "report.json").read_bytes() == before  # the previous report, whole
    json.loads(before)
    assert not [p for p in tmp_path.rglob("*") if atomic.is_temporary(p)]
    monkeypatch.undo()
    assert tripletclip(command) == 0
    assert json.loads((tmp_path / "report.json").read_text())["results"] == json.loads(before)["results"]



def test_a_synthesis_task_on_a_full_disk_stops_a_two_worker_run(faults_inputs, tmp_path):
    """Each worker's first shard fails with ENOSPC: the error reaches the main process (a process pool would wait
    forever for an error it cannot rebuild), the run stops with the message, and the rerun completes."""
    import subprocess

    from benchmarks.faults.disk import DISK_FAULTS, with_injection
    from benchmarks.faults.jobs import Synthesis, base_env

    class TwoShards(Synthesis):  # the first 48 rows: one shard per worker, each fails at its first write
        def command(self, out):
            return [*super().command(out), "--max_rows", "48"]

    job = TwoShards(faults_inputs, 2)
    out = tmp_path / "out"
    point = DISK_FAULTS[job.key][0]
    done = subprocess.run(job.command(out), env=with_injection(base_env(), point), cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "disk is full" in done.stderr.lower() and "-of-" in done.stderr
    assert job.untrusted(out) == []
    again = subprocess.run(job.command(out), env=base_env(), cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    reference = tmp_path / "reference"
    assert subprocess.run(job.command(reference), env=base_env(), cwd=tmp_path, capture_output=True,
                          timeout=300).returncode == 0
    assert job.compare(out, reference) == (0, [])
