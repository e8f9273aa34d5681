"""Training step time: TripletCLIP on B triplets vs `transformers.CLIPModel` on 2B pairs, and vs two passes per tower.

One step is ``zero_grad`` + forward + loss + backward + AdamW step (the trainer's optimizer: AdamW with open_clip's
parameter groups), on one collated batch of the built-in world:

- **tripletclip**: ``TripletCLIPModel(input_ids, pixel_values, negative_*, return_loss=True)``: one vision pass over
  ``[x; x']`` and one text pass over ``[y; y']``, then the TripletCLIP loss;
- **clip**: ``transformers.CLIPModel`` with the same weights on the 2B pairs ``([x; x'], [y; y'])``, CLIP loss: the
  encoders do exactly the same work, so the ratio shows what the TripletCLIP objective and our model code cost;
- **two_pass**: the official TripletCLIP code's approach, rebuilt on our model: four encoder calls (positives, then
  negatives, per tower) and the same TripletCLIP loss.

The three are timed alternately in one process; ratios are the medians of per-round ratios.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .fixtures import trainer_optimizer
from .timing import Figure, Goal, Ratio, interleaved, ratio_figure

GOAL_VS_CLIP = Goal("<=", 1.05)
# The official approach does the same encoder work in two passes per tower: one fused pass should cost no more,
# within the same 5% allowance as the CLIP comparison.
GOAL_VS_TWO_PASS = Goal("<=", 1.05)
SECTION = "Training step"


@dataclass
class StepSetting:
    preset: str
    batch_size: int
    gradient_checkpointing: bool
    repeats: int
    warmup: int = 1
    device: str = "cpu"
    precision: str = "fp32"  # "bf16": autocast around forward and loss
    max_seconds: float | None = None  # stop adding repetitions after this long (at least two are taken)

    @property
    def key(self) -> str:
        ckpt = "ckpt" if self.gradient_checkpointing else "nockpt"
        return f"{self.preset}-B{self.batch_size}-{ckpt}-{self.device.split(':')[0]}-{self.precision}"

    @property
    def title(self) -> str:
        ckpt = "grad. ckpt on" if self.gradient_checkpointing else "grad. ckpt off"
        return f"{self.preset}, B={self.batch_size}, {ckpt}, {self.device}, {self.precision}"


def _normalised(embeds: torch.Tensor) -> torch.Tensor:
    return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


class StepFunctions:
    """The three training steps on one batch. ``model`` (TripletCLIP) serves both the one-pass and the two-pass
    step with one optimizer; ``clip`` has its own."""

    def __init__(self, model, clip, batch: dict, device: str, precision: str):
        self.device = torch.device(device)
        self.model = model.to(self.device).train()
        self.clip = clip.to(self.device).train()
        self.batch = {key: value.to(self.device) for key, value in batch.items()}
        self.optimizer = trainer_optimizer(self.model)
        self.clip_optimizer = trainer_optimizer(self.clip)
        self.precision = precision
        b = self.batch
        # The 2B pairs of the CLIP baseline: the collator pads real and negative captions to one length.
        self.pairs = {
            "input_ids": torch.cat([b["input_ids"], b["negative_input_ids"]]),
            "attention_mask": torch.cat([b["attention_mask"], b["negative_attention_mask"]]),
            "pixel_values": torch.cat([b["pixel_values"], b["negative_pixel_values"]]),
        }

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _finish(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        loss.backward()
        optimizer.step()

    def tripletclip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.model(**self.batch, return_loss=True, loss_type="tripletclip").loss
        self._finish(loss, self.optimizer)

    def clip_pairs(self) -> None:
        self.clip_optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.clip(**self.pairs, return_loss=True).loss
        self._finish(loss, self.clip_optimizer)

    def two_pass(self) -> None:
        from modeling_tripletclip.losses import compute_loss

        m, b = self.model, self.batch
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            image = _normalised(m.get_image_features(pixel_values=b["pixel_values"]).pooler_output)
            negative_image = _normalised(m.get_image_features(pixel_values=b["negative_pixel_values"]).pooler_output)
            text = _normalised(
                m.get_text_features(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).pooler_output
            )
            negative_text = _normalised(
                m.get_text_features(
                    input_ids=b["negative_input_ids"], attention_mask=b["negative_attention_mask"]
                ).pooler_output
            )
            loss = compute_loss("tripletclip", m.logit_scale.exp(), image, text, negative_image, negative_text)["loss"]
        self._finish(loss, self.optimizer)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def as_dict(self) -> dict:
        return {"tripletclip": self.tripletclip, "clip": self.clip_pairs, "two_pass": self.two_pass}


def build(setting: StepSetting, tokenizer, rows: list[dict]) -> StepFunctions:
    from .fixtures import collate, twin_models

    model, clip, processor = twin_models(setting.preset, tokenizer)
    if setting.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        clip.gradient_checkpointing_enable()
    batch = collate(processor, rows, setting.batch_size)
    return StepFunctions(model, clip, batch, setting.device, setting.precision)


def measure(setting: StepSetting, tokenizer, rows: list[dict], profile_dir=None) -> list[Figure]:
    """Time the three steps for one setting; returns the two ratio figures (vs CLIP, vs two passes)."""
    steps = build(setting, tokenizer, rows)
    # Warm-up: the two-pass step shares the TripletCLIP step's model and optimizer, already warm after its own.
    for _ in range(setting.warmup):
        steps.tripletclip()
        steps.clip_pairs()
    timings = interleaved(steps.as_dict(), repeats=setting.repeats, warmup=0, sync=steps.sync,
                          max_seconds=setting.max_seconds)
    times = timings.wall
    b = setting.batch_size
    common = {
        "setting": setting.title,
        "triplets_per_s": b / _median(times["tripletclip"]),
        "tripletclip_median_s": _median(times["tripletclip"]),
        "clip_median_s": _median(times["clip"]),
        "two_pass_median_s": _median(times["two_pass"]),
        "tripletclip_samples_per_s": 2 * b / _median(times["tripletclip"]),
        "clip_samples_per_s": 2 * b / _median(times["clip"]),
        "two_pass_samples_per_s": 2 * b / _median(times["two_pass"]),
    }
    if steps.device.type == "cuda":
        common.update(_cuda_peaks(steps))
    figures = [
        ratio_figure(
            f"train_step/{setting.key}/vs_clip",
            SECTION,
            f"TripletCLIP step (B triplets) / CLIPModel step (2B pairs): {setting.title}",
            Ratio.of(timings, "tripletclip", "clip"),
            GOAL_VS_CLIP,
            **common,
        ),
        ratio_figure(
            f"train_step/{setting.key}/vs_two_pass",
            SECTION,
            f"TripletCLIP step (one pass per tower) / two passes per tower (official approach): {setting.title}",
            Ratio.of(timings, "tripletclip", "two_pass"),
            GOAL_VS_TWO_PASS,
            **common,
        ),
    ]
    if steps.device.type == "cuda":
        figures += _cuda_memory_figures(setting, common)
    if profile_dir is not None and any(f.met is False for f in figures):
        path = profile_steps(steps, profile_dir, setting)
        for figure in figures:
            if figure.met is False:
                figure.profile = str(path)
    del steps
    return figures


def _cuda_memory_figures(setting: StepSetting, detail: dict) -> list[Figure]:
    from .memory import GOAL_VS_CLIP
    from .memory import SECTION as MEMORY

    ours, clip = detail["tripletclip_peak_step_gib"], detail["clip_peak_step_gib"]
    return [
        Figure(f"memory/{setting.key}/gpu_per_triplet", MEMORY,
               f"TripletCLIP step GPU memory per triplet (MiB): {setting.title}",
               ours * 1024 / setting.batch_size, unit="MiB/triplet", detail=detail),
        Figure(f"memory/{setting.key}/gpu_vs_clip", MEMORY,
               f"TripletCLIP step GPU memory (B triplets) / CLIPModel (2B pairs): {setting.title}",
               ours / clip if clip > 0 else None, goal=GOAL_VS_CLIP, detail=detail),
    ]


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _cuda_peaks(steps: StepFunctions) -> dict:
    """Peak GPU memory of one step of each kind (GiB), above what the models and optimizers already hold."""
    out = {}
    for name, function in steps.as_dict().items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        out[f"{name}_peak_step_gib"] = (torch.cuda.max_memory_allocated() - before) / 2**30
    return out


def profile_steps(steps: StepFunctions, out_dir, setting: StepSetting, row_limit: int = 25, num_steps: int = 2):
    """`torch.profiler` of ``num_steps`` steps of each kind, in one text file: first the operators whose self time
    differs most between the TripletCLIP step and each baseline (per step), then each kind's top operators."""
    from pathlib import Path

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if steps.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    attribute = "self_device_time_total" if steps.device.type == "cuda" else "self_cpu_time_total"
    tables, per_op, flops, calls = {}, {}, {}, {}
    for name, function in steps.as_dict().items():
        function()  # warm
        steps.sync()
        with profile(activities=activities, with_flops=True) as prof:
            for _ in range(num_steps):
                function()
            steps.sync()
        averages = prof.key_averages()
        tables[name] = averages.table(sort_by=attribute, row_limit=row_limit)
        per_op[name] = {event.key: getattr(event, attribute, 0.0) / 1e6 / num_steps for event in averages}
        flops[name] = sum(event.flops or 0 for event in averages) / num_steps
        calls[name] = sum(event.count for event in averages if event.key.startswith("aten::")) / num_steps
    lines = [f"torch.profiler, {num_steps} steps of each kind, {setting.title}; times per step.", ""]
    totals = {name: sum(ops.values()) for name, ops in per_op.items()}
    lines.append("Total self time of all operators per step (s): "
                 + ", ".join(f"{n} {t:.3f}" for n, t in totals.items()))
    lines.append("Work per step, counted by the profiler (matrix products and convolutions, GFLOP): "
                 + ", ".join(f"{n} {f / 1e9:.2f}" for n, f in flops.items())
                 + f"; TripletCLIP / CLIP = {flops['tripletclip'] / max(flops['clip'], 1):.4f}")
    lines.append("aten operator calls per step: " + ", ".join(f"{n} {c:.0f}" for n, c in calls.items()))
    lines.append("Equal counted work with unequal time points at memory-bound operators (element-wise operations over "
                 "activations that fit in the CPU caches at B rows but not at 2B, or other jobs competing for the "
                 "cores and memory bandwidth), not at extra computation.")
    for baseline in ("clip", "two_pass"):
        ratio = totals["tripletclip"] / totals[baseline] if totals[baseline] else float("nan")
        lines.append(f"\nOperators whose self time differs most, tripletclip - {baseline} (operator work ratio "
                     f"{ratio:.3f}):")
        names = set(per_op["tripletclip"]) | set(per_op[baseline])
        diffs = sorted(names, key=lambda op: -abs(per_op["tripletclip"].get(op, 0.0) - per_op[baseline].get(op, 0.0)))
        for op in diffs[:12]:
            ours, theirs = per_op["tripletclip"].get(op, 0.0), per_op[baseline].get(op, 0.0)
            lines.append(f"  {op:<55} {ours:9.4f} s  {theirs:9.4f} s  {ours - theirs:+9.4f} s")
    for name, table in tables.items():
        lines += ["", f"===== {name}: top {row_limit} operators by self time, {num_steps} steps =====", table]
    path = Path(out_dir) / f"perf_profile_train_step_{setting.key}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
