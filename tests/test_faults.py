"""Dead peers and the fault harness's quick mode (every job: a SIGKILL at a random moment and a full disk, each
resumed with the job's documented command and compared with an uninterrupted run)."""

from __future__ import annotations

import json

from benchmarks.faults.jobs import Training
from benchmarks.faults.peers import kill_peer_trial
from benchmarks.faults.run import main as faults_main
from modeling_tripletclip.training.checkpoints import list_checkpoints


def test_a_killed_peer_makes_the_survivor_exit_with_a_message(faults_inputs, tmp_path):
    """Two training processes started as two machines start them; rank 1 is SIGKILLed after the first checkpoint.
    Rank 0 must exit (not wait forever) within the process-group timeout (--ddp_timeout 60), non-zero, with a
    message naming rank 1 as lost, and the checkpoint on disk must stay complete."""
    job = Training(faults_inputs, 2)
    assert "--ddp_timeout" in job.flags(tmp_path)
    out = tmp_path / "run"
    problems, seconds = kill_peer_trial(job, out, tmp_path, timeout=60)
    assert problems == []
    assert seconds < 60
    assert list_checkpoints(out) and job.untrusted(out) == []


QUICK_JOBS = "train-1p,convert,report,push"  # the suite's share; the full harness runs every job (README)


def test_quick_fault_harness(tmp_path):
    """``python -m benchmarks.faults --quick`` on four jobs: one SIGKILL at a random moment each, resumed with the
    job's documented command and compared with an uninterrupted run."""
    status = faults_main(["--quick", "--output_dir", str(tmp_path), "--work_dir", str(tmp_path / "work"),
                          "--faults", "kill", "--jobs", QUICK_JOBS])
    results = json.loads((tmp_path / "faults-quick.json").read_text())
    rows = {(row["job"], row["fault"]): row for row in results["rows"]}
    failures = [f"{key}: {row['notes']}" for key, row in rows.items() if row["survived"] != row["trials"]]
    assert status == 0 and not failures, failures
    assert all(row["data_lost"] == 0 for row in rows.values())
    assert {job for job, _ in rows} == {"training, 1 process", "WebDataset conversion", "evaluation report",
                                         "push staging"}
    assert all(row["trials"] == 1 for row in rows.values())
    assert "| job | fault | trials | survived | data lost | rerun |" in (tmp_path / "faults-quick.md").read_text()
