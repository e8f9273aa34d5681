"""Live runs: no worker outlives its launcher, one live writer per output folder, and the harness's kill reaches every
process a job started.

- A two-process run whose launcher alone is SIGKILLed (training at a random step, synthesis once it holds its
  folder): every worker exits within 10 s, with a message, and the resume completes (training: equal to an
  uninterrupted run in weights, optimizer, scheduler, data position and metrics).
- Each job's command line holds its output folder: while another live process holds it, the command exits non-zero
  at once naming the holder, and writes nothing; once the holder is SIGKILLed the same command runs, with nothing
  to clean by hand. For training a real first run, frozen while the second starts, then finishes as if alone.
- The harness's kill trial of a two-process job leaves no process alive.
- A synthesis task whose process is SIGKILLed stops the run at once, naming it; the rerun equals an uninterrupted
  run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.faults import trees
from benchmarks.faults.disk import with_injection
from benchmarks.faults.jobs import Conversion, PushStaging, Report, Synthesis, Training, World, base_env
from benchmarks.faults.run import FaultOptions, Harness, live_folder_trial, orphan_trial, task_kill_trial
from dataset_builders.utils.output_folders import LOCK_FILE, FolderInUseError, FolderLock, hold_folder

TIMEOUT = 600


def _run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env or base_env(), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def _logged_step(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(line).get("step") or 0 for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


@pytest.fixture(scope="module")
def two_process_training(faults_inputs, tmp_path_factory):
    """The harness's two-process training job and its uninterrupted run."""
    job = Training(faults_inputs, 2)
    work = tmp_path_factory.mktemp("two-process-training")
    started = time.time()
    done = _run(job.command(work / "reference"), work)
    assert done.returncode == 0, done.stderr[-3000:]
    return job, work, work / "reference", time.time() - started


@pytest.mark.slow
def test_a_killed_launcher_leaves_no_training_worker_and_the_resume_equals_an_uninterrupted_run(two_process_training):
    job, work, reference, duration = two_process_training
    step = random.randint(1, job.steps - 5)  # a few steps before the end: the workers are still training
    out = work / "orphaned"
    problems, seconds, finished_first = orphan_trial(job, out, work, duration, random.Random(0),
                                                     ready=lambda folder: _logged_step(folder) >= step)
    assert not finished_first, f"the run finished before step {step}"
    assert problems == [], problems
    assert seconds < 10, f"a worker outlived its launcher by {seconds:.1f} s"
    assert "the launcher of this run" in (work / "orphaned.stderr").read_text()
    done = _run(job.resume_command(out), work)
    assert done.returncode == 0, done.stderr[-3000:]
    lost, differences = job.compare(out, reference)  # weights, optimizer, scheduler, data position, metrics
    assert (lost, differences) == (0, []), f"killed at step {step}: {differences}"


@pytest.mark.slow
def test_a_killed_launcher_leaves_no_synthesis_worker(faults_inputs, tmp_path):
    from dataset_builders.synthesis.runner import STATE_DIR

    class ManyShards(Synthesis):  # 128 shards of 2 rows, each write made 0.25 s slower: the kill lands mid-work
        def command(self, out: Path) -> list[str]:
            return [*super().command(out), "--rows_per_shard", "2"]

        def env(self) -> dict[str, str]:
            return {**with_injection(super().env()), "TRIPLETCLIP_FAULT_SLOW": "parquet:0.25"}

    job = ManyShards(faults_inputs, 2)
    out = tmp_path / "orphaned"
    # Killed once the run holds its folder: both workers are running and the shards are still to be written.
    problems, seconds, finished_first = orphan_trial(job, out, tmp_path, 0, random.Random(0),
                                                     ready=lambda folder: (folder / LOCK_FILE).exists())
    assert not finished_first and problems == [], problems
    assert seconds < 10, f"a worker outlived its launcher by {seconds:.1f} s"
    done = _run(job.resume_command(out), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / STATE_DIR / "manifest.json").read_text())["complete"]


@pytest.mark.slow
def test_a_killed_synthesis_task_stops_the_run_and_the_rerun_equals_an_uninterrupted_run(faults_inputs, tmp_path):
    """A process pool would wait forever for a task whose process was SIGKILLed: the run stops within 10 s instead,
    naming the task, with no process left; the rerun redoes the rest, and equals an uninterrupted run."""
    job = Synthesis(faults_inputs, 2)
    reference = tmp_path / "reference"
    done = _run(job.command(reference), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "killed-task"
    problems, seconds = task_kill_trial(job, out, tmp_path, random.Random(1))
    assert problems == [] and seconds < 10, (problems, seconds)
    done = _run(job.resume_command(out), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert job.compare(out, reference) == (0, [])


@pytest.mark.slow
def test_the_harness_kill_trial_of_a_two_process_job_leaves_no_process(two_process_training, tmp_path):
    job, _, reference, duration = two_process_training
    harness = Harness(FaultOptions(work_dir=str(tmp_path), trials=1, seed=3))
    harness.work.mkdir(parents=True, exist_ok=True)
    row = harness.kill_trials(job, reference, duration)
    # The trial failed if any process of the killed run or of its resume was still alive afterwards.
    assert (row.trials, row.survived, row.data_lost) == (1, 1, 0), row.notes


def test_kill_all_reaches_workers_in_their_own_sessions(tmp_path):
    """A launcher whose child starts a worker in a session of its own (as torch's launcher does): a signal to the
    launcher's process group would miss the worker; `kill_all` does not."""
    script = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
              " start_new_session=True); print('ready', flush=True); time.sleep(120)")
    env, tag = trees.tagged_env(base_env())
    launcher = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    assert launcher.stdout.readline().strip() == "ready"
    assert len(trees.left(tag)) == 2
    trees.kill_all(launcher, tag)
    assert trees.left(tag) == []


# ------------------------------------------------------------------------------------------ one live writer


def test_the_lock_names_its_holder_and_clears_itself_when_the_holder_is_killed(tmp_path):
    folder = tmp_path / "out"
    holder = _holder(folder)
    with pytest.raises(FolderInUseError, match=rf"PID {holder.pid} on .*kill {holder.pid}"):
        hold_folder(folder, "second")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / LOCK_FILE).exists()  # a killed holder leaves its file, which holds nothing
    with hold_folder(folder, "second") as lock:
        assert lock.holder()["job"] == "second"
        assert hold_folder(folder, "again in this process").holder()["job"] == "second"  # re-entrant
    assert not (folder / LOCK_FILE).exists()


def _holder(folder: Path) -> subprocess.Popen:
    """Another live process holding ``folder``."""
    code = (f"import sys, time; from dataset_builders.utils.output_folders import hold_folder; "
            f"hold_folder({str(folder)!r}, 'a live run'); print('held', flush=True); time.sleep(300)")
    process = subprocess.Popen([sys.executable, "-c", code], env=base_env(), stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _jobs(inputs) -> dict:
    """Each job's command line, with tiny settings."""
    training, world = Training(inputs, 1), World(inputs)
    return {
        "training": training.command,
        "synthesis": Synthesis(inputs, 1).command,
        "conversion": Conversion(inputs).command,
        "world generation": lambda out: [*world.command(out), "--num_train", "16", "--num_test", "8",
                                         "--sugarcrepe_per_kind", "2", "--num_winoground", "4", "--num_retrieval", "4"],
        "evaluation report": Report(inputs).command,
        "push staging": PushStaging(inputs).command,
    }


@pytest.mark.parametrize("name", ["training", "synthesis", "conversion", "world generation", "evaluation report",
                                  "push staging"])
def test_a_second_run_on_a_held_folder_is_refused_then_runs_once_the_holder_is_killed(faults_inputs, tmp_path, name):
    command = _jobs(faults_inputs)[name]
    if name == "training":  # two steps are enough here
        command = (lambda base: lambda out: [*base(out), "--max_train_steps", "2", "--checkpointing_steps", "2"])(
            command)
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        started = time.time()
        refused = _run(command(out), tmp_path)
        seconds = time.time() - started
        assert refused.returncode == 2, refused.stderr[-2000:]
        errors = [line for line in refused.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and f"PID {holder.pid}" in errors[0] and "a live run" in errors[0], refused.stderr
        assert seconds < 60
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    done = _run(command(out), tmp_path)  # no manual step: the killed holder's lock went with it
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_second_training_on_a_live_folder_is_refused_and_the_first_finishes_as_if_alone(two_process_training):
    """A real two-process run holds the folder; the same command (with --resume_from_checkpoint latest) started
    meanwhile is refused naming it, and the first finishes equal to an uninterrupted run."""
    job, work, reference, _ = two_process_training
    out = work / "live"
    problems, seconds = live_folder_trial(job, out, work)
    assert problems == [], problems
    assert seconds < 60
    assert job.compare(out, reference) == (0, [])
    assert FolderLock(out, "x").holder() is None  # released by the first run at its end
