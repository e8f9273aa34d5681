"""The fault harness: ``python -m benchmarks.faults [--quick] [--output_dir DIR]``.

For every job (`benchmarks.faults.jobs`): an uninterrupted reference run, then trials of each fault, each followed
by the job's documented resume command and a comparison with the reference:

- **kill**: SIGKILL of every process the job started (the launcher, its whole process tree and every process
  carrying the run's tag: `benchmarks.faults.trees`) at a random moment of the run (uniform over the reference
  run's duration, seeded); none may be left alive, after the kill nor after the resume;
- **orphan** (multi-process jobs): SIGKILL of the launcher alone, at a random moment once its workers run; every
  worker must notice and exit within 10 s with a message, and the resume must end as the reference;
- **task** (synthesis on two workers): SIGKILL of the process of one running task; the run must stop within 10 s,
  non-zero, naming the task, with no process left, and the rerun must end as the reference;
- **live** (every job that writes a folder): a second run of the same command on the folder while the first is
  live; it must be refused at once, naming the first, and the first must finish as the reference;
- **disk full**: the write that commits a checkpoint, a shard, a manifest, a report or a staged file fails with
  ``ENOSPC`` (`benchmarks.faults.disk`): the job must stop with a message saying the disk is full and where, and
  the rerun must end as the reference;
- **dead peer** (two-process training): rank 1 is killed mid-step; rank 0 must exit within the process-group
  timeout with a message naming the lost process, and the checkpoint on disk must resume to the reference;
- **hostile files** through every reader (`benchmarks.faults.readers`) and **bad configurations**
  (`benchmarks.faults.configs`): counted cases.

It prints the reliability table (job x fault: trials, survived, data lost, the command that reruns it) and writes
``faults.json`` and ``faults.md`` to ``--output_dir``; full runs also update the "Reliability" section of
``benchmarks/README.md``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "benchmarks.faults"

from . import trees
from .jobs import REPO, Inputs, Job, all_jobs

RESULTS = REPO / "benchmarks" / "results"
FAULTS = ("kill", "orphan", "task", "live", "disk", "peer", "hostile", "config")
#: How long a worker may outlive its launcher.
ORPHAN_SECONDS = 10.0
#: How long a second run on a live folder may take to be refused (its start-up included).
REFUSAL_SECONDS = 120.0


@dataclass
class FaultOptions:
    """Options of ``python -m benchmarks.faults``."""

    quick: bool = field(default=False, metadata={"help": "one trial per job (the test suite runs it on four jobs)"})
    output_dir: str = field(default=str(RESULTS), metadata={"help": "where faults.json and faults.md go"})
    work_dir: str | None = field(default=None, metadata={
        "help": "inputs and runs (default: $TRIPLETCLIP_CACHE or ~/.cache/tripletclip, sub-folder faults-full or "
                "faults-quick); emptied first"})
    trials: int | None = field(default=None, metadata={"help": "kill trials per job (default: 10, quick: 1)"})
    jobs: str = field(default="all", metadata={"help": "comma-separated job keys (train-1p, train-2p, synthesis-1p, "
                                                       "synthesis-2p, convert, world, report, push) or all"})
    faults: str = field(default=",".join(FAULTS), metadata={"help": f"comma-separated subset of {', '.join(FAULTS)}"})
    seed: int = field(default=0, metadata={"help": "seed of the kill moments"})
    no_readme: bool = field(default=False, metadata={"help": "do not update benchmarks/README.md"})

    @property
    def fault_list(self) -> list[str]:
        return [f.strip() for f in self.faults.split(",") if f.strip()]

    def validate(self) -> None:
        unknown = sorted(set(self.fault_list) - set(FAULTS))
        if unknown:
            raise ValueError(f"--faults: unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
        if self.trials is not None and self.trials < 1:
            raise ValueError("--trials must be at least 1")


@dataclass
class Row:
    """One line of the reliability table."""

    job: str
    fault: str
    trials: int = 0
    survived: int = 0
    data_lost: int = 0
    rerun: str = ""
    notes: list[str] = field(default_factory=list)


def _run(command: list[str], env: dict, timeout: float, cwd: Path, problems: list[str] | None = None
         ) -> subprocess.CompletedProcess:
    """Run ``command`` to its end; with ``problems``, also check that none of its processes outlived it."""
    env, tag = trees.tagged_env(env)
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if problems is not None:
        _no_survivors(tag, "after the rerun", problems)
    return done


def _failure(stderr: str) -> str:
    """What a failed run said: its ``error:`` lines and the end of its output (a crash's report included)."""
    errors = [line for line in stderr.splitlines() if "error" in line.lower()][-5:]
    return " | ".join(errors) + " ... " + stderr[-1500:]


def _no_survivors(tag: str, when: str, problems: list[str]) -> None:
    """Add a problem (and end them) when processes tagged ``tag`` are still alive; they get 10 s to exit."""
    remaining, _ = trees.wait_until_gone(tag, ORPHAN_SECONDS)
    if remaining:
        problems.append(f"{len(remaining)} process(es) still alive {when}: {trees.describe(remaining)}")
        trees.signal_all(remaining, signal.SIGKILL)


class Harness:
    def __init__(self, options: FaultOptions):
        self.options = options
        from dataset_builders.utils.locations import cache_dir

        cache = cache_dir()
        self.work = Path(options.work_dir) if options.work_dir else cache / (
            "faults-quick" if options.quick else "faults-full")
        self.trials = options.trials or (1 if options.quick else 10)
        self.random = random.Random(options.seed)
        self.rows: list[Row] = []
        self.log: list[str] = []

    # ------------------------------------------------------------------ set-up

    def inputs(self) -> Inputs:
        from .fixtures import build_inputs

        return build_inputs(self.work / "inputs")

    def selected(self, inputs: Inputs) -> list[Job]:
        jobs = all_jobs(inputs)
        if self.options.jobs == "all":
            return jobs
        wanted = {k.strip() for k in self.options.jobs.split(",")}
        unknown = wanted - {job.key for job in jobs}
        if unknown:
            raise ValueError(f"--jobs: unknown job(s) {', '.join(sorted(unknown))}")
        return [job for job in jobs if job.key in wanted]

    def reference(self, job: Job) -> tuple[Path, float]:
        out = self.work / job.key / "reference"
        started = time.time()
        done = _run(job.command(out), job.env(), 1800, self.work)
        if done.returncode != 0:
            raise RuntimeError(f"The uninterrupted {job.title} run failed:\n{done.stderr[-3000:]}")
        return out, time.time() - started

    # ------------------------------------------------------------------ kills

    def kill_trials(self, job: Job, reference: Path, duration: float) -> Row:
        row = Row(job.title, "SIGKILL at a random moment", rerun=job.rerun)
        for trial in range(self.trials):
            out = self.work / job.key / f"kill-{trial}"
            delay = self.random.uniform(0.1, 0.95) * duration
            env, tag = trees.tagged_env(job.env())
            process = subprocess.Popen(job.command(out), env=env, cwd=self.work, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            survivors: list[str] = []
            try:
                process.wait(timeout=delay)
                finished_first = True
            except subprocess.TimeoutExpired:
                finished_first = False
                trees.kill_all(process, tag)
            _no_survivors(tag, "after the kill", survivors)
            untrusted = job.untrusted(out)
            rerun: list[str] = []
            done = _run(job.resume_command(out), job.env(), 1800, self.work, rerun)
            lost, problems = (0, []) if done.returncode == 0 else (1, [f"the resume failed: {_failure(done.stderr)}"])
            if done.returncode == 0:
                lost, problems = job.compare(out, reference)
            problems += untrusted + survivors + rerun
            row.trials += 1
            row.survived += int(not problems)
            row.data_lost += lost
            note = f"trial {trial}: killed after {delay:.1f} s" + (" (the run had already finished)"
                                                                     if finished_first else "")
            row.notes.append(note + (": " + "; ".join(problems) if problems else ": identical to the reference"))
            shutil.rmtree(out, ignore_errors=True)
        return row

    def _conclude(self, row: Row, job: Job, out: Path, reference: Path, problems: list[str], what: str,
                  fine: str = "resumed identical", watch: bool = True, failed: str = "the resume failed") -> None:
        """Run ``job``'s resume command on ``out`` (checking, with ``watch``, that none of its processes outlives
        it), compare with ``reference``, and count the trial in ``row`` with its note."""
        done = _run(job.resume_command(out), job.env(), 1800, self.work, problems if watch else None)
        lost = 1
        if done.returncode == 0:
            lost, compared = job.compare(out, reference)
            problems += compared
        else:
            problems.append(f"{failed}: {_failure(done.stderr)}")
        row.trials += 1
        row.survived += int(not problems)
        row.data_lost += lost
        row.notes.append(f"{what}: " + ("; ".join(problems) if problems else fine))
        shutil.rmtree(out, ignore_errors=True)

    # ------------------------------------------------------------------ a launcher killed alone

    def orphan_trials(self, job: Job, reference: Path, duration: float) -> Row:
        row = Row(job.title, "launcher SIGKILLed, workers left to notice", rerun=job.rerun)
        for trial in range(max(1, self.trials // 3)):
            out = self.work / job.key / f"orphan-{trial}"
            problems, seconds, finished_first = orphan_trial(job, out, self.work, duration, self.random,
                                                             reference=reference)
            what = ("the workers had already finished their work" if finished_first else
                    f"every worker exited {seconds:.1f} s after its launcher was killed")
            self._conclude(row, job, out, reference, problems, f"trial {trial}: {what}")
        return row

    def task_trials(self, job: Job, reference: Path) -> Row:
        row = Row(job.title, "one task's process SIGKILLed", rerun=job.rerun)
        for trial in range(max(1, self.trials // 3)):
            out = self.work / job.key / f"task-{trial}"
            problems, seconds = task_kill_trial(job, out, self.work, self.random)
            self._conclude(row, job, out, reference, problems,
                           f"trial {trial}: the run stopped {seconds:.1f} s after its task was killed")
        return row

    # ------------------------------------------------------------------ two runs, one folder

    def live_trials(self, job: Job, reference: Path) -> Row:
        row = Row(job.title, "a second run started on a live folder", rerun="wait, or stop the first; then "
                                                                              + job.rerun)
        for trial in range(max(1, self.trials // 5)):
            out = self.work / job.key / f"live-{trial}"
            problems, seconds = live_folder_trial(job, out, self.work)
            lost = 1
            if not any(p.startswith("the first run") for p in problems):
                lost, compared = job.compare(out, reference)
                problems += compared
            row.trials += 1
            row.survived += int(not problems)
            row.data_lost += lost
            row.notes.append(f"trial {trial}: the second run was refused after {seconds:.1f} s: "
                             + ("; ".join(problems) if problems else "naming the first, which finished identical"))
            shutil.rmtree(out, ignore_errors=True)
        return row

    # ------------------------------------------------------------------ full disks

    def disk_trials(self, job: Job, reference: Path) -> Row:
        from .disk import DISK_FAULTS, with_injection

        points = DISK_FAULTS.get(job.key, [])
        row = Row(job.title, "disk full (ENOSPC) at a commit", rerun=job.rerun + ", after freeing space")
        for number, point in enumerate(points):
            out = self.work / job.key / f"disk-{number}"
            done = _run(job.command(out), with_injection(job.env(), point), 600, self.work)
            problems = []
            if done.returncode == 0:
                problems.append("the job did not stop when the disk was full")
            elif "disk is full" not in done.stderr.lower() or point.where not in done.stderr:
                problems.append(f"the message does not say the disk is full and where: {done.stderr[-300:]!r}")
            problems += job.untrusted(out)
            self._conclude(row, job, out, reference, problems, point.what, "stopped with the message, rerun identical",
                           watch=False, failed="the rerun failed")
        return row

    # ------------------------------------------------------------------ dead peers

    def peer_trials(self, job: Job, reference: Path) -> Row:
        from .peers import kill_peer_trial

        row = Row(job.title, "rank 1 killed mid-step", rerun=job.rerun + " (both processes)")
        for trial in range(max(1, self.trials // 3)):
            out = self.work / job.key / f"peer-{trial}"
            problems, seconds = kill_peer_trial(job, out, self.work, timeout=60)
            self._conclude(row, job, out, reference, problems, f"trial {trial}: rank 0 exited {seconds:.1f} s after "
                           f"its peer died", "with the message; resumed identical", watch=False)
        return row

    # ------------------------------------------------------------------ hostile files, bad configurations

    def hostile_rows(self, inputs: Inputs) -> list[Row]:
        from . import readers
        from .fixtures import tiny_model

        model, processor = tiny_model(inputs)
        work = self.work / "hostile"
        shutil.rmtree(work, ignore_errors=True)
        calls = [
            lambda: readers.read_with_collator(processor),
            lambda: readers.read_with_stream(processor),
            lambda: readers.read_tripletdata_folder(processor, work / "folder"),
            lambda: readers.read_released_shards(work / "shards"),
            lambda: readers.read_synthesis_input(work / "synthesis"),
            lambda: readers.read_sugarcrepe(model, processor, work / "sugarcrepe"),
            lambda: readers.read_retrieval(model, processor, work / "retrieval"),
            lambda: readers.read_space_upload(work / "space"),
        ]
        rows = []
        for call in calls:
            result = call()
            row = Row(result.reader, "hostile files", trials=len(result.cases), survived=result.survived,
                      data_lost=result.silently_dropped, rerun="pytest tests/test_hostile_files.py")
            wrong = [f"{c.case} ({c.column}): {c.outcome}{' - ' + c.detail if c.detail else ''}, expected "
                     f"{c.expected}" for c in result.cases if not c.ok]
            if result.counted != result.expected_counts:
                wrong.append(f"counted {dict(result.counted)}, expected {dict(result.expected_counts)}")
            if result.crashed:
                wrong.append(result.crashed)
            row.notes = wrong + ([f"not representable in this format: {', '.join(result.not_applicable)}"]
                                 if result.not_applicable else [])
            rows.append(row)
        return rows

    def config_row(self, inputs: Inputs) -> Row:
        from .configs import BAD_CONFIGS
        from .fixtures import check_bad_configs

        row = Row("every command", "invalid configuration", rerun="pytest tests/test_bad_configurations.py")
        for name, problem in check_bad_configs(BAD_CONFIGS, inputs, self.work / "configs").items():
            row.trials += 1
            row.survived += int(problem is None)
            if problem:
                row.notes.append(f"{name}: {problem}")
        return row

    # ------------------------------------------------------------------ all of it

    def run(self) -> list[Row]:
        from tqdm.auto import tqdm

        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        inputs = self.inputs()
        jobs = self.selected(inputs)
        faults = self.options.fault_list
        steps = [(job, fault) for job in jobs for fault in ("kill", "orphan", "task", "live", "disk", "peer")
                 if fault in faults and (fault != "peer" or (job.key.startswith("train") and job.processes > 1))
                 and (fault != "task" or (job.key.startswith("synthesis") and job.processes > 1))
                 and (fault != "orphan" or job.processes > 1) and (fault != "live" or job.holds_folder)]
        bar = tqdm(total=len(steps) + ("hostile" in faults) + ("config" in faults), desc="fault harness",
                   unit="step")
        references: dict[str, tuple[Path, float]] = {}
        for job, fault in steps:
            bar.set_postfix_str(f"{job.key}: {fault}")
            if job.key not in references:
                references[job.key] = self.reference(job)
            reference, duration = references[job.key]
            row = {"kill": lambda: self.kill_trials(job, reference, duration),
                   "orphan": lambda: self.orphan_trials(job, reference, duration),
                   "task": lambda: self.task_trials(job, reference),
                   "live": lambda: self.live_trials(job, reference),
                   "disk": lambda: self.disk_trials(job, reference),
                   "peer": lambda: self.peer_trials(job, reference)}[fault]()
            if row.trials:
                self.rows.append(row)
                tqdm.write(_line(row))
            bar.update(1)
        if "hostile" in faults:
            bar.set_postfix_str("hostile files")
            for row in self.hostile_rows(inputs):
                self.rows.append(row)
                tqdm.write(_line(row))
            bar.update(1)
        if "config" in faults:
            bar.set_postfix_str("bad configurations")
            row = self.config_row(inputs)
            self.rows.append(row)
            tqdm.write(_line(row))
            bar.update(1)
        bar.close()
        return self.rows


def orphan_trial(job: Job, out: Path, cwd: Path, duration: float, rng: random.Random,
                 ready=None, reference: Path | None = None) -> tuple[list[str], float, bool]:
    """Start ``job``, SIGKILL its launcher alone once its workers run (at a random moment after that, or once
    ``ready(out)`` is true), and wait for every worker to exit, each with a message unless its work was done (the
    output already equal to ``reference``'s). Returns (problems, seconds the last worker took to exit, whether the
    work was done before the kill)."""
    env, tag = trees.tagged_env(job.env())
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.stderr"
    started = time.time()
    with log.open("w") as stderr:
        process = subprocess.Popen(job.command(out), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    problems: list[str] = []
    while process.poll() is None and len(trees.workers(process)) < job.processes:
        time.sleep(0.05)
    delay = rng.uniform(0.05, 0.6) * max(duration - (time.time() - started), 0.5)
    deadline = time.time() + (600 if ready else delay)
    while process.poll() is None and time.time() < deadline and not (ready and ready(out)):
        time.sleep(0.02)
    if process.poll() is not None:
        _no_survivors(tag, "after the run", problems)
        return problems, 0.0, True
    workers = trees.workers(process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    remaining, seconds = trees.wait_until_gone(tag, ORPHAN_SECONDS)
    if remaining:
        problems.append(f"{len(remaining)} worker(s) still alive {ORPHAN_SECONDS:.0f} s after the launcher was "
                        f"killed: {trees.describe(remaining)}")
        trees.signal_all(remaining, signal.SIGKILL)
    text = log.read_text(errors="replace")
    said = "launcher of this run" in text or "stopped by SIGTERM" in text
    done = reference is not None and job.compare(out, reference)[0] == 0
    if workers and not said and not done:
        problems.append(f"no worker said why it stopped: {text.strip().splitlines()[-3:]}")
    problems += job.untrusted(out)
    return problems, seconds, done and not said


def task_kill_trial(job: Job, out: Path, cwd: Path, rng: random.Random) -> tuple[list[str], float]:
    """Start ``job`` (a synthesis run on a pool of workers, each shard write made slower so the kill lands mid-work),
    SIGKILL the process of one running task once a random number of shards (0 to 3) is done (it may have just
    finished that task and be taking the next), and wait for the run to stop: within `ORPHAN_SECONDS`, non-zero,
    with an ``error:`` line naming the task or the worker, and no process left. Returns (problems, seconds from the
    kill to the run's end)."""
    from dataset_builders.synthesis.pipeline import RUNNING_DIR
    from dataset_builders.synthesis.plan import PIPELINE_DIR

    from .disk import with_injection

    env, tag = trees.tagged_env({**with_injection(job.env()), "TRIPLETCLIP_FAULT_SLOW": "parquet:0.5"})
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.stderr"
    after = rng.randint(0, 3)
    with log.open("w") as stderr:
        process = subprocess.Popen(job.command(out), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    problems: list[str] = []
    completions, running = out / PIPELINE_DIR / "completions", out / RUNNING_DIR
    victim, deadline = None, time.time() + 600
    while process.poll() is None and victim is None and time.time() < deadline:
        done = len(list(completions.glob("*"))) if completions.is_dir() else 0
        if done >= after:
            for file in sorted(running.glob("*.pid")) if running.is_dir() else []:
                if not (completions / file.stem).exists():
                    try:
                        victim = (int(file.stem), int(file.read_text()))
                    except (OSError, ValueError):
                        continue
                    break
        time.sleep(0.02)
    if victim is None:
        trees.kill_all(process, tag)
        return [f"no task was running to be killed (the run ended with {process.returncode})"], 0.0
    os.kill(victim[1], signal.SIGKILL)
    killed = time.time()
    try:
        process.wait(ORPHAN_SECONDS)
    except subprocess.TimeoutExpired:
        problems.append(f"the run was still going {ORPHAN_SECONDS:.0f} s after task {victim[0]}'s process died")
    seconds = time.time() - killed
    remaining, _ = trees.wait_until_gone(tag, ORPHAN_SECONDS)
    if remaining:
        problems.append(f"{len(remaining)} process(es) still alive: {trees.describe(remaining)}")
        trees.signal_all(remaining, signal.SIGKILL)
    if process.returncode == 0:
        problems.append("the run exited with status 0 although a task was lost")
    text = log.read_text(errors="replace")
    if f"task {victim[0]} " not in text and f"PID {victim[1]}" not in text:
        problems.append(f"no message names the lost worker: {text.strip().splitlines()[-3:]}")
    problems += job.untrusted(out)
    return problems, seconds


def live_folder_trial(job: Job, out: Path, cwd: Path) -> tuple[list[str], float]:
    """Start ``job``; once it holds its folder, freeze it (SIGSTOP, so it cannot finish meanwhile) and start the
    same command on the folder; that second run must exit non-zero within `REFUSAL_SECONDS` with an ``error:`` line
    naming the first run's PID. The first then goes on (SIGCONT) and must finish. Returns (problems, seconds the
    second run took)."""
    from dataset_builders.utils.output_folders import FolderLock

    env, tag = trees.tagged_env(job.env())
    lock = FolderLock(out, job.title)
    first = subprocess.Popen(job.command(out), env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    problems: list[str] = []
    deadline = time.time() + 600
    while first.poll() is None and time.time() < deadline and not (lock.holder() or {}).get("pid"):
        time.sleep(0.02)
    holder = lock.holder() or {}
    if first.poll() is not None or not holder:
        trees.kill_all(first, tag)
        return [f"the first run ended before it held its folder: {first.stderr.read()[-300:]}"], 0.0
    frozen = trees.tree(first.pid) + [p for p in trees.left(tag) if p.pid not in {q.pid for q in
                                                                                   trees.tree(first.pid)}]
    trees.signal_all(frozen, signal.SIGSTOP)
    second_env, second_tag = trees.tagged_env(job.env())
    started = time.time()
    try:
        second = subprocess.run(job.resume_command(out), env=second_env, cwd=cwd, capture_output=True, text=True,
                                timeout=REFUSAL_SECONDS)
        seconds = time.time() - started
        if second.returncode == 0:
            problems.append("the second run was not refused (exit status 0)")
        elif "error:" not in second.stderr or str(holder["pid"]) not in second.stderr:
            problems.append(f"the second run's message does not name the first run (PID {holder['pid']}): "
                            f"{second.stderr.strip().splitlines()[-2:]}")
    except subprocess.TimeoutExpired:
        seconds = time.time() - started
        problems.append(f"the second run was still running after {REFUSAL_SECONDS:.0f} s")
    _no_survivors(second_tag, "after the second run was refused", problems)
    trees.signal_all(frozen, signal.SIGCONT)
    try:
        _, stderr = first.communicate(timeout=1800)
        if first.returncode != 0:
            problems.append(f"the first run failed after the second was refused: {stderr[-400:]}")
    except subprocess.TimeoutExpired:
        problems.append("the first run did not finish after the second was refused")
    trees.kill_all(first, tag)
    _no_survivors(tag, "after the first run", problems)
    return problems, seconds


def _line(row: Row) -> str:
    line = f"  {row.job} / {row.fault}: {row.survived}/{row.trials} survived, data lost {row.data_lost}"
    if row.survived < row.trials:
        line += "".join(f"\n    {note}" for note in row.notes)
    return line


def table(rows: list[Row]) -> str:
    lines = ["| job | fault | trials | survived | data lost | rerun |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.job} | {row.fault} | {row.trials} | {row.survived} | {row.data_lost} | {row.rerun} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    rows = [Row(**r) for r in results["rows"]]
    text = ["# Fault harness results\n",
            f"- Run {results['finished']} on {results['machine']}; mode: {results['mode']}; {results['trials']} kill "
            f"trials per job; wall time {results['wall_time_s'] / 60:.1f} min.",
            f"- Command: `{results['command']}`.", "", table(rows), ""]
    failures = [(row, note) for row in rows for note in row.notes if row.survived < row.trials]
    if failures:
        text += ["## Trials that did not survive", ""]
        text += [f"- {row.job} / {row.fault}: {note}" for row, note in failures]
    return "\n".join(text) + "\n"


README_HEADING = "## Reliability"


def update_readme(readme: Path, results: dict) -> None:
    import re

    from dataset_builders.utils import atomic

    section = (f"{README_HEADING}\n\nEvery reliability promise as a repeated, counted trial "
               f"(`python -m benchmarks.faults`, {results['wall_time_s'] / 60:.0f} min here; `--quick`: one trial "
               f"per job; the tests run it on four jobs). Each trial resumes with the job's documented command and "
               f"compares the result with an uninterrupted run: training's weights, optimizer, scheduler, data "
               f"position and metrics; every row of synthesis, conversion and the world exactly once with equal "
               f"values; the report and the staged files byte for byte. Data lost counts rows missing, duplicated "
               f"or different (training: optimizer steps). A kill ends every process the job started (the launcher, "
               f"its process tree, and every process carrying the run's tag in its environment, wherever it was "
               f"re-parented) and the trial fails if any is alive after the kill or after the resume. *Launcher "
               f"SIGKILLed* kills `accelerate launch` alone, once its workers run: each worker must exit within "
               f"{ORPHAN_SECONDS:.0f} s, saying why. *A second run on a live folder* freezes a run (SIGSTOP) once it "
               f"holds its output folder and starts the same command there: it must be refused within "
               f"{REFUSAL_SECONDS:.0f} s (start-up included), naming the first run's PID, and the first, let go on, "
               f"must end as an uninterrupted run. Measured {results['finished']}.\n\n"
               + table([Row(**r) for r in results["rows"]]) + "\n")
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(README_HEADING)}\s*$.*?(?=^## (?!#)|\Z)", re.DOTALL | re.MULTILINE)
    text = pattern.sub(lambda _: section + "\n", text, count=1) if pattern.search(text) else \
        text.rstrip() + "\n\n" + section
    atomic.write_text(readme, text.rstrip() + "\n")


def main(argv=None) -> int:
    from dataset_builders.utils import atomic
    from dataset_builders.utils.options import parse_options

    try:
        options = parse_options(FaultOptions, argv, prog="python -m benchmarks.faults",
                                description="Kills, full disks, dead peers, hostile files and bad configurations, "
                                            "each as counted trials, in a reliability table.")
    except ValueError as error:
        print(f"python -m benchmarks.faults: error: {error}", file=sys.stderr)
        return 2
    started = time.time()
    harness = Harness(options)
    rows = harness.run()
    import platform

    results = {
        "mode": "quick" if options.quick else "full",
        "command": "python -m benchmarks.faults " + " ".join(argv if argv is not None else sys.argv[1:]),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.platform()}",
        "trials": harness.trials,
        "wall_time_s": time.time() - started,
        "rows": [asdict(r) for r in rows],
    }
    out = Path(options.output_dir)
    stem = "faults-quick" if options.quick else "faults"
    atomic.write_json(out / f"{stem}.json", results, indent=1)
    atomic.write_text(out / f"{stem}.md", markdown(results))
    if not options.quick and not options.no_readme and out.resolve() == RESULTS.resolve():
        update_readme(REPO / "benchmarks" / "README.md", results)
    print()
    print(table(rows))
    survived = all(r.survived == r.trials and r.data_lost == 0 for r in rows)
    print(f"\n{'Every trial survived' if survived else 'Some trials did not survive'} "
          f"({sum(r.trials for r in rows)} trials); details in {out / (stem + '.md')}")
    return 0 if survived else 1


if __name__ == "__main__":
    sys.exit(main())
