"""Peak memory of a training step per triplet, with and without gradient checkpointing (CPU: one process per setting).

Each setting and model runs in a fresh Python process (TripletCLIP's and CLIP's side by side). The process builds
the model and the trainer's AdamW optimizer and takes one warm-up step on a single triplet (gradients and optimizer
state now exist and are kept: fixed costs, not per-triplet ones). Then, on B triplets:

- **peak tensor memory per triplet** (the reported figure): the peak of live tensor bytes during forward and
  backward above the resident state, from `torch.profiler`'s memory events (exact and independent of the
  allocator), divided by B: activations and temporaries, everything that grows with the batch;
- **RSS**: the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``) before forward and backward and read
  after (``VmHWM``): the process-level view, which the C allocator's caching makes less exact; the optimizer step's
  own temporaries (AdamW works parameter by parameter: a fixed cost) are measured apart;
- **saved for backward**: bytes of the tensors (other than parameters) autograd keeps between forward and backward;
- the same for `transformers.CLIPModel` on the 2B pairs (goal: TripletCLIP's peak tensor memory is at most 1.05
  times CLIP's).

Inputs are random tensors of the training batch's shapes (images at the preset's size, captions of a fixed token
length), which is all memory depends on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .timing import Figure, Goal

GOAL_VS_CLIP = Goal("<=", 1.05)
SECTION = "Memory"
MIB = 2**20


@dataclass
class MemorySetting:
    preset: str
    batch_size: int
    gradient_checkpointing: bool
    text_length: int = 32

    @property
    def key(self) -> str:
        return f"{self.preset}-B{self.batch_size}-{'ckpt' if self.gradient_checkpointing else 'nockpt'}"

    @property
    def title(self) -> str:
        return f"{self.preset}, B={self.batch_size}, grad. ckpt {'on' if self.gradient_checkpointing else 'off'}"


# ----------------------------------------------------------------------------------------------- in the worker


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_kib() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def tensor_peak_mib(function) -> float:
    """The peak of live tensor bytes (MiB) that ``function`` allocates above what existed when it started, from
    `torch.profiler`'s memory events: exact, and independent of how the allocator keeps or returns memory."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type().name == "CPU"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / MIB


def _inputs(config, batch: int, text_length: int, generator):
    import torch

    vision, text = config.vision_config, config.text_config
    size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    low = max(text.bos_token_id, text.eos_token_id, text.pad_token_id) + 1

    def captions():
        ids = torch.randint(low, text.vocab_size, (batch, text_length), generator=generator)
        ids[:, 0], ids[:, -1] = text.bos_token_id, text.eos_token_id
        return ids, torch.ones_like(ids)

    ids, mask = captions()
    negative_ids, negative_mask = captions()
    return {
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "negative_pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "input_ids": ids,
        "attention_mask": mask,
        "negative_input_ids": negative_ids,
        "negative_attention_mask": negative_mask,
    }


def _as_pairs(batch: dict) -> dict:
    import torch

    return {
        "pixel_values": torch.cat([batch["pixel_values"], batch["negative_pixel_values"]]),
        "input_ids": torch.cat([batch["input_ids"], batch["negative_input_ids"]]),
        "attention_mask": torch.cat([batch["attention_mask"], batch["negative_attention_mask"]]),
    }


def worker(preset: str, batch_size: int, gradient_checkpointing: bool, model_kind: str, text_length: int,
           profile: bool = False) -> dict:
    import torch
    from transformers import CLIPModel

    from modeling_tripletclip.modeling_tripletclip import TripletCLIPModel
    from modeling_tripletclip.presets import preset_config

    from .fixtures import clip_config
    from .fixtures import trainer_optimizer

    torch.manual_seed(0)
    # Special token ids inside every preset's vocabulary (no tokenizer is needed for random token ids).
    config = preset_config(preset, text_config={"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1})
    model = TripletCLIPModel(config) if model_kind == "tripletclip" else CLIPModel(clip_config(config))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    optimizer = trainer_optimizer(model)
    generator = torch.Generator().manual_seed(0)
    batch = _inputs(config, batch_size, text_length, generator)
    if model_kind == "clip":
        batch = _as_pairs(batch)

    # Parameters are saved for backward too (e.g. by every linear layer); they are not activations.
    saved = {"bytes": 0, "seen": {p.untyped_storage().data_ptr() for p in model.parameters()}}

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in saved["seen"]:
            saved["seen"].add(key)
            saved["bytes"] += storage.nbytes()
        return tensor

    def forward_backward(inputs, count_saved=False):
        optimizer.zero_grad(set_to_none=False)  # gradients stay allocated: a fixed cost, not a per-triplet one
        if count_saved:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                loss = model(**inputs, return_loss=True).loss
        else:
            loss = model(**inputs, return_loss=True).loss
        loss.backward()

    def step(inputs):
        forward_backward(inputs)
        optimizer.step()

    rows = 1 if model_kind == "tripletclip" else 2
    step({key: value[:rows] for key, value in batch.items()})  # warm-up: gradients and optimizer state now exist
    resident_kib = _status_kib("VmRSS") or 0
    reset = _reset_peak()
    before_kib = resident_kib if reset else max(resident_kib, _peak_kib())  # without a reset: growth above the peak
    # Forward and backward on B triplets: what grows with the batch.
    forward_backward(batch, count_saved=True)
    peak_kib = _peak_kib()
    # The optimizer step's temporaries (AdamW works parameter by parameter): a fixed cost, reported apart.
    after_backward_kib = _status_kib("VmRSS") or 0
    if reset:
        _reset_peak()
    optimizer.step()
    optimizer_peak_kib = _peak_kib()
    # The same forward and backward once more, under the profiler: the peak of live tensor memory.
    tensor_peak = tensor_peak_mib(lambda: forward_backward(batch))
    parameters = sum(p.numel() for p in model.parameters())
    table = None
    if profile:  # after the measurement: the profiler's own allocations must not count
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            forward_backward(batch)
        table = prof.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=25)
    return {
        "profile_table": table,
        "preset": preset,
        "model": model_kind,
        "batch_size": batch_size,
        "gradient_checkpointing": gradient_checkpointing,
        "text_length": text_length,
        "parameters": parameters,
        "tensor_peak_mib": tensor_peak,
        "tensor_peak_mib_per_triplet": tensor_peak / batch_size,
        "rss_before_step_mib": resident_kib * 1024 / MIB,
        "peak_rss_mib": max(peak_kib, optimizer_peak_kib) * 1024 / MIB,
        "rss_step_mib": (peak_kib - before_kib) * 1024 / MIB,
        "rss_step_mib_per_triplet": (peak_kib - before_kib) * 1024 / MIB / batch_size,
        "optimizer_step_mib": max(0, optimizer_peak_kib - after_backward_kib) * 1024 / MIB if reset else None,
        "saved_for_backward_mib": saved["bytes"] / MIB,
        "saved_for_backward_mib_per_triplet": saved["bytes"] / MIB / batch_size,
        "peak_counter_reset": reset,
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------------------------- orchestration


def _command(setting: MemorySetting, model_kind: str, profile: bool) -> list[str]:
    command = [sys.executable, "-m", "benchmarks.perf.memory", "--worker", "--preset", setting.preset,
               "--batch-size", str(setting.batch_size), "--model", model_kind, "--text-length", str(setting.text_length)]
    if setting.gradient_checkpointing:
        command.append("--gradient-checkpointing")
    if profile:
        command.append("--profile")
    return command


def run_workers(setting: MemorySetting, model_kinds: list[str], threads: int | None, timeout: float = 900,
                profile: bool = False) -> dict[str, dict]:
    """One fresh process per model, run side by side (each measures only its own peak), reports by model."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cwd = Path(__file__).resolve().parents[2]
    running = {
        kind: subprocess.Popen(_command(setting, kind, profile), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=cwd)
        for kind in model_kinds
    }
    reports = {}
    for kind, process in running.items():
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise RuntimeError(f"Memory measurement {setting.title} ({kind}) took more than {timeout:.0f} s.")
        if process.returncode != 0:
            raise RuntimeError(f"Memory measurement {setting.title} ({kind}) failed:\n{stderr[-4000:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        if not profile:
            report.pop("profile_table", None)
        reports[kind] = report
    return reports


def measure(setting: MemorySetting, threads: int | None, with_clip: bool = True, profile_dir=None) -> list[Figure]:
    reports = run_workers(setting, ["tripletclip", "clip"] if with_clip else ["tripletclip"], threads)
    ours = reports["tripletclip"]
    figures = [
        Figure(
            id=f"memory/{setting.key}/per_triplet",
            section=SECTION,
            label=f"TripletCLIP forward+backward peak tensor memory per triplet (MiB): {setting.title}",
            value=ours["tensor_peak_mib_per_triplet"],
            unit="MiB/triplet",
            detail=ours,
        )
    ]
    if with_clip:
        clip = reports["clip"]
        figures.append(
            Figure(
                id=f"memory/{setting.key}/vs_clip",
                section=SECTION,
                label=f"TripletCLIP peak tensor memory (B triplets) / CLIPModel (2B pairs): {setting.title}",
                value=ours["tensor_peak_mib"] / clip["tensor_peak_mib"] if clip["tensor_peak_mib"] > 0 else None,
                goal=GOAL_VS_CLIP,
                detail={"tripletclip": ours, "clip": clip,
                        "saved_for_backward_ratio": ours["saved_for_backward_mib"] / clip["saved_for_backward_mib"],
                        "rss_step_ratio": ours["rss_step_mib"] / clip["rss_step_mib"] if clip["rss_step_mib"] > 0
                        else None},
            )
        )
        if profile_dir is not None and figures[-1].met is False:
            figures[-1].profile = str(profile_memory(setting, threads, Path(profile_dir)))
    return figures


def profile_memory(setting: MemorySetting, threads: int | None, out_dir: Path) -> Path:
    """`torch.profiler` memory tables (operators by memory they allocate) of one step of each model."""
    path = out_dir / f"perf_profile_memory_{setting.key}.txt"
    parts = [f"torch.profiler (profile_memory=True), forward and backward, {setting.title}; top operators by the "
             f"CPU memory they allocate (a sum over the step, not a peak).\n"]
    reports = run_workers(setting, ["tripletclip", "clip"], threads, profile=True)
    for kind, report in reports.items():
        parts.append(f"\n===== {kind}: forward+backward peak tensor memory {report['tensor_peak_mib']:.1f} MiB "
                     f"(RSS {report['rss_step_mib']:.1f} MiB above the resident {report['rss_before_step_mib']:.1f} "
                     f"MiB); saved for backward {report['saved_for_backward_mib']:.1f} MiB =====\n")
        parts.append(report["profile_table"] or "")
    path.write_text("".join(parts), encoding="utf-8")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Worker of the memory measurement (started by benchmarks.perf)")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--model", choices=("tripletclip", "clip"), required=True)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--text-length", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="also return a torch.profiler memory table")
    args = parser.parse_args(argv)
    report = worker(args.preset, args.batch_size, args.gradient_checkpointing, args.model, args.text_length,
                    args.profile)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
