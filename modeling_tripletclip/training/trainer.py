"""The TripletCLIP trainer: one readable Accelerate loop, from a 2-core laptop to many GPUs.

`train(config)` reads top to bottom in the order things happen: accelerator -> output folder -> data -> model ->
optimizer -> `accelerator.prepare` -> resume -> (evaluate the untrained model) -> loop (`accumulate`, `backward`,
`sync_gradients`, clamp the temperature, log, checkpoint, evaluate) -> save the model, its card and its results.

Launch it with `accelerate launch train_accelerate.py [flags]`: mixed precision, the number of processes and
machines, DeepSpeed/FSDP come from `accelerate config` / `accelerate launch` flags. The batch is one contrastive batch
across all processes: the loop hands the model a `losses.Gather` with this process's rank, and the loss all-gathers
the embeddings with gradient, so N processes with B rows each train exactly as one process with N x B.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, set_seed
from tqdm.auto import tqdm

from dataset_builders.batches import StreamPosition, TripletBatches, TripletCollator, defer_image_decoding, model_inputs
from dataset_builders.sources import DatasetSource
from dataset_builders.utils import atomic
from dataset_builders.utils.processes import watch_run

from ..evaluation.report import EvaluationReport
from ..losses import Gather
from . import checkpoints as ckpt
from .config import TrainingConfig
from .optim import clamp_logit_scale, create_optimizer, create_scheduler
from .peers import PeerLostError, is_peer_failure, lost_peers
from .sources import TrainingData, check_sources, load_training_data
from .tracking import METRICS_FILE, plot_loss_curve, trackers_for, trim_metrics

logger = logging.getLogger("tripletclip.train")

UNTRAINED = "untrained"
EVAL_RESULTS = "eval_results.json"


@dataclass
class TrainingResult:
    output_dir: Path
    steps: int
    eval_results: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    wall_time: float = 0.0


def train(config: TrainingConfig) -> TrainingResult:
    watch_run()  # a process of a multi-process run ends with its launcher
    config.validate()
    config.validate_world_size(int(os.environ.get("WORLD_SIZE", "1")))  # as launched, before any process group
    source = check_sources(config)  # --dataset resolved once for the whole run
    started = time.time()
    output_dir = Path(config.output_dir)

    # ------------------------------------------------------------------ accelerator
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=trackers_for(config.report_to, output_dir, output_dir.name),
        project_dir=str(output_dir),
        # The batch is global (split across processes): the scheduler steps once per optimizer step.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # A lost process makes the others' next collective fail (or time out) instead of waiting forever.
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=config.ddp_timeout))],
    )
    config.validate_world_size(accelerator.num_processes)
    try:
        return _train(accelerator, config, source, output_dir, started)
    except Exception as error:
        if accelerator.num_processes == 1 or isinstance(error, PeerLostError) or not is_peer_failure(error):
            raise
        raise PeerLostError(accelerator, lost_peers(accelerator), output_dir, error) from error
    finally:
        ckpt.release_output_dir(output_dir)  # held by the main process since it claimed the folder


def _train(accelerator: Accelerator, config: TrainingConfig, source: DatasetSource, output_dir: Path,
           started: float) -> TrainingResult:
    _setup_logging(accelerator)
    if config.push_to_hub and accelerator.is_main_process:
        # A bad repository id, a missing token or an offline machine stop the run now, not after training.
        from ..hub.push import check_repo_id, resolve_token

        check_repo_id(config.hub_model_id, "model")
        resolve_token(config.hub_token)
    if accelerator.is_main_process:
        ckpt.claim_output_dir(config, output_dir)
    accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ data
    with accelerator.main_process_first():
        data: TrainingData = load_training_data(config, source, accelerator.process_index,
                                                accelerator.num_processes)
    data.check_objective(config)

    # ------------------------------------------------------------------ model
    set_seed(config.seed)
    model, processor, base_model = _create_model(config, data)
    eval_model = model  # the module itself: evaluation and logging never go through the DDP wrapper

    optimizer = create_optimizer(model, config)
    scheduler = create_scheduler(optimizer, config)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    # ------------------------------------------------------------------ resume
    step, position, skipped, baseline, truncated = 0, StreamPosition(), {}, None, 0
    if config.resume_from_checkpoint:
        step, position, skipped, baseline, truncated = _resume(accelerator, config, output_dir)
        if accelerator.is_main_process:  # the metrics of steps after the checkpoint are logged again
            trim_metrics(output_dir / METRICS_FILE, step)

    per_process = config.train_batch_size // accelerator.num_processes
    # Images are decoded by the collator, which skips and counts a corrupt one; only the negatives the objective
    # uses are decoded at all.
    collator = TripletCollator(
        processor,
        negative_captions=config.objective.needs_negative_captions,
        negative_images=config.objective.needs_negative_images,
        reduced_image_decoding=config.reduced_image_decoding,
        normalize_images=False,  # the step normalises on the device: 4x less to copy, no float work here
    )
    batches = TripletBatches(
        defer_image_decoding(data.dataset),
        collator,
        per_process_batch_size=per_process,
        seed=config.seed,
        rank=accelerator.process_index,
        num_processes=accelerator.num_processes,
        streaming=data.streaming,
        num_workers=config.dataloader_num_workers,
        start=position,
    )
    # The loss is over the whole batch of every process: the model gathers the embeddings across them.
    gather = Gather(accelerator.process_index, accelerator.num_processes) if accelerator.num_processes > 1 else None
    batches.stats.skipped.update(skipped.get(str(accelerator.process_index), {}))
    collator.truncated = truncated

    # ------------------------------------------------------------------ the untrained model, for comparison
    if accelerator.is_main_process:
        accelerator.init_trackers("tripletclip", config={k: str(v) for k, v in config.to_dict().items()})
    if baseline is None and config.eval_before_training and data.benchmarks:
        baseline = _evaluate(accelerator, eval_model, processor, data.benchmarks, step=0, label="untrained model")

    # ------------------------------------------------------------------ the loop
    logger.info(
        "Training %s (%s loss) for %d steps: %d triplets per step on %d process(es)%s; %s",
        config.model_source, config.loss_type, config.max_train_steps,
        config.train_batch_size * config.gradient_accumulation_steps, accelerator.num_processes,
        f" x {config.gradient_accumulation_steps} accumulation" if config.gradient_accumulation_steps > 1 else "",
        data.description,
    )
    progress = tqdm(
        total=config.max_train_steps, initial=step, desc="training", disable=not accelerator.is_local_main_process
    )
    window = _Window()
    results = {}
    output = batch = None
    model.train()
    while step < config.max_train_steps:
        with accelerator.accumulate(model):
            batch = model_inputs(next(batches), collator, accelerator.device,
                                 negative_captions=config.objective.needs_negative_captions,
                                 negative_images=config.objective.needs_negative_images)
            output = model(**batch, return_loss=True, gather=gather)
            accelerator.backward(output.loss)
            if accelerator.sync_gradients:
                if config.save_first_step_gradients and step == 0:
                    _save_gradients(accelerator, model, config.save_first_step_gradients)
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        window.add(output, per_process)
        batches.stats.truncated = collator.truncated
        if not accelerator.sync_gradients:
            continue

        # ---- one optimizer step done
        step += 1
        clamp_logit_scale(model, config.logit_scale_max)
        progress.update(1)
        if step % config.logging_steps == 0 or step == config.max_train_steps:
            logs = window.flush(accelerator, batches.stats, scheduler, eval_model)
            progress.set_postfix(loss=f"{logs['train/loss']:.3f}", scale=f"{logs['train/logit_scale']:.1f}")
            accelerator.log(logs, step=step)
        if step % config.checkpointing_steps == 0 and step < config.max_train_steps:
            _checkpoint(accelerator, config, output_dir, step, batches, baseline)
        if config.eval_steps and step % config.eval_steps == 0 and step < config.max_train_steps and data.benchmarks:
            _evaluate(accelerator, eval_model, processor, data.benchmarks, step=step, label=f"step {step}")
            model.train()
    progress.close()

    # ------------------------------------------------------------------ final model, evaluation, card
    accelerator.wait_for_everyone()
    _checkpoint(accelerator, config, output_dir, step, batches, baseline)
    if data.benchmarks:
        results = _evaluate(accelerator, eval_model, processor, data.benchmarks, step=step, label="trained model")
    skipped_all = _gather_skips(accelerator, batches.stats)
    if accelerator.is_main_process:
        report = EvaluationReport()
        if baseline:
            report.add(UNTRAINED, baseline)
        if results:
            report.add(config.output_dir, results)
        _save_final(accelerator, config, model, processor, base_model, output_dir, report, data)
        if report.results:
            print(report.to_markdown(labels={config.output_dir: "trained"}))
        if config.push_to_hub:
            from ..hub.push import publish

            _, url = publish("model", output_dir, config.hub_model_id, private=config.hub_private_repo,
                             token=config.hub_token, checkpoint_format=config.checkpoint_format, as_written=True,
                             commit_message=f"Upload {config.loss_type} model trained with tripletclip ({step} steps)")
            logger.info("Pushed the model to %s", url)
        if skipped_all:
            logger.info("Skipped rows (counted, not used): %s", dict(skipped_all))
    # ------------------------------------------------------------------ leave together
    # The data-parallel wrapper's reducer holds a reference to the process group, and so do the accelerator's lists of
    # prepared objects. Release all of them first, meet, and only then let `end_training` finish the trackers and
    # destroy the group: its last reference goes on every process at the same moment, while every peer is still
    # there. In the other order the group's destructor runs later, whenever the wrapper happens to be freed, and a
    # gloo group destroyed after its peer has exited can block forever.
    del model, optimizer, scheduler, output, batch
    accelerator.free_memory()
    gc.collect()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    wall = time.time() - started
    if accelerator.is_main_process:
        logger.info("Done in %.0f s. Model, card and results in %s", wall, output_dir)
    return TrainingResult(output_dir, step, {config.output_dir: results}, dict(skipped_all), wall)


# ====================================================================================================== helpers


def _setup_logging(accelerator: Accelerator) -> None:
    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    logger.setLevel(level)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()


def _create_model(config: TrainingConfig, data: TrainingData):
    """The model and processor to train, with freezing, LoRA and gradient checkpointing applied."""
    from ..presets import create_model_and_processor

    base_model = None
    if config.model_name_or_path:
        from ..loading import load_processor, load_tripletclip

        model = load_tripletclip(config.model_name_or_path, loss_type=config.loss_type)
        processor = load_processor(config.model_name_or_path)
        base_model = config.model_name_or_path
    else:
        tokenizer = None
        if config.tokenizer_name:
            from transformers import CLIPTokenizer

            tokenizer = CLIPTokenizer.from_pretrained(config.tokenizer_name)
        model, processor = create_model_and_processor(
            config.preset or "tiny",
            corpus=None if tokenizer is not None else data.caption_corpus(),
            tokenizer=tokenizer,
            loss_type=config.loss_type,
        )
    model.config.local_loss = config.local_loss
    model.config.cyclip_in_modal_weight = config.cyclip_in_modal_weight
    model.config.cyclip_cross_modal_weight = config.cyclip_cross_modal_weight

    if config.freeze != "none":
        tower = (model.vision_model, model.visual_projection) if config.freeze == "vision" else (
            model.text_model, model.text_projection)
        for module in tower:
            module.requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=[name.strip() for name in config.lora_target_modules.split(",") if name.strip()],
        )
        model = get_peft_model(model, lora)
    return model, processor, base_model


class _Window:
    """Running sums of the logged values between two logging steps."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums: dict[str, float] = {}
        self.count = 0
        self.samples = 0
        self.started = time.time()

    def add(self, output, samples: int):
        self.count += 1
        self.samples += samples
        values = {"train/loss": output.loss.detach()}
        for name, value in (output.loss_parts or {}).items():
            values[f"train/loss_{name}"] = value.detach()
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)

    def flush(self, accelerator, stats, scheduler, model) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        logs = {name: total / max(self.count, 1) for name, total in self.sums.items()}
        logs["train/logit_scale"] = float(_logit_scale(model).exp())
        logs["train/learning_rate"] = scheduler.get_last_lr()[0]
        logs["train/samples_per_second"] = self.samples * accelerator.num_processes / elapsed
        # Counts of every process (each reads its own rows); one small all-reduce per logging step.
        counts = torch.tensor([stats.skipped_total, stats.truncated], device=accelerator.device)
        skipped, truncated = accelerator.reduce(counts, reduction="sum").tolist()
        logs["train/skipped_rows"] = int(skipped)
        logs["train/truncated_captions"] = int(truncated)
        self.reset()
        return logs


def _logit_scale(model) -> torch.Tensor:
    for name, parameter in model.named_parameters():
        if name.endswith("logit_scale"):
            return parameter.detach().float()
    raise AttributeError("model has no logit_scale")


def _evaluate(accelerator, model, processor, benchmarks: dict, step: int, label: str) -> dict:
    """Evaluate on the main process (the others wait); log and return `{benchmark: {metric: value}}`."""
    results = {}
    if accelerator.is_main_process:
        from ..evaluation import evaluate_model

        base = _base_model(model)
        was_training = base.training
        base.eval()
        logger.info("Evaluating the %s on %s", label, ", ".join(benchmarks))
        results = evaluate_model(base, processor, benchmarks)
        if was_training:
            base.train()
        accelerator.log(
            {f"eval/{bench}/{metric}": value for bench, metrics in results.items() for metric, value in metrics.items()
             if isinstance(value, (int, float))},
            step=step,
        )
    accelerator.wait_for_everyone()
    return results


def _base_model(model):
    """The TripletCLIPModel inside a peft wrapper, or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _checkpoint(accelerator, config, output_dir, step, batches: TripletBatches, baseline) -> None:
    rank_state = {"position": batches.position.to_dict(), "skipped": dict(batches.stats.skipped),
                  "truncated": batches.collator.truncated}
    shared = {"baseline_eval": baseline, "num_processes": accelerator.num_processes}
    try:
        path = ckpt.save_checkpoint(
            accelerator, output_dir, step, rank_state, shared, config=config,
            total_limit=config.checkpoints_total_limit,
        )
    except atomic.DiskFullError as error:
        previous = ckpt.list_checkpoints(output_dir)
        kept = f"{previous[-1].name} is complete and untouched" if previous else "no earlier checkpoint exists"
        raise atomic.DiskFullError(error.path, error.error, advice=(
            f"The previous checkpoint stays valid ({kept}). Free space on the disk that holds {output_dir} and rerun "
            f"the same command with --resume_from_checkpoint latest.")) from error
    logger.debug("Saved %s", path)


def _resume(accelerator, config, output_dir):
    candidates = ckpt.resolve_checkpoint(output_dir, config.resume_from_checkpoint)
    if not candidates:
        logger.warning("No checkpoint in %s to resume from: starting from step 0.", output_dir)
        return 0, StreamPosition(), {}, None, 0
    errors = []
    for path in candidates:
        try:
            shared, rank_state = ckpt.load_checkpoint(accelerator, path)
        except Exception as error:  # a corrupt checkpoint: fall back to the one before
            errors.append(f"{path.name}: {error}")
            logger.warning("Checkpoint %s cannot be loaded (%s); trying the previous one.", path, error)
            continue
        if shared.get("num_processes", accelerator.num_processes) != accelerator.num_processes:
            raise ValueError(
                f"{path} was saved with {shared['num_processes']} processes; resume with the same number "
                f"(accelerate launch --num_processes {shared['num_processes']})."
            )
        logger.info("Resumed from %s (step %d)", path, shared["step"])
        position = StreamPosition(**rank_state["position"])
        skipped = {str(accelerator.process_index): rank_state.get("skipped", {})}
        return shared["step"], position, skipped, shared.get("baseline_eval"), rank_state.get("truncated", 0)
    raise ValueError("No checkpoint could be loaded:\n  " + "\n  ".join(errors))


def _save_gradients(accelerator, model, path) -> None:
    if accelerator.is_main_process:
        from safetensors.torch import save_file

        grads = {name: p.grad.detach().float().cpu().contiguous() for name, p in
                 accelerator.unwrap_model(model).named_parameters() if p.grad is not None}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(grads, str(path))
    accelerator.wait_for_everyone()


def _gather_skips(accelerator, stats) -> dict:
    """Skip counts summed over processes."""
    from accelerate.utils import gather_object

    merged: dict[str, int] = {}
    for counts in gather_object([dict(stats.skipped)]):
        for reason, count in counts.items():
            merged[reason] = merged.get(reason, 0) + count
    return merged


def _save_final(accelerator, config, model, processor, base_model, output_dir: Path, report: EvaluationReport,
                data) -> None:
    """The final model (safetensors in the chosen form, processor), its card, its results and the loss curve."""
    from ..loading import save_checkpoint

    unwrapped = accelerator.unwrap_model(model)
    merged = None
    if config.lora:
        unwrapped.save_pretrained(output_dir / "lora_adapter")  # the adapters alone
        merged = unwrapped.merge_and_unload()
        save_checkpoint(merged, output_dir, processor=processor, checkpoint_format=config.checkpoint_format)
    else:
        save_checkpoint(unwrapped, output_dir, processor=processor, checkpoint_format=config.checkpoint_format)
    report.save(output_dir / EVAL_RESULTS)
    png = plot_loss_curve(output_dir / METRICS_FILE, output_dir / "loss_curve.png",
                          title=f"{config.loss_type} loss, {config.model_source}")
    from ..hub.cards import render_model_card

    saved = merged if config.lora else unwrapped
    card = render_model_card(
        training_config=config.to_dict(),
        datasets=[config.dataset if not config.is_world else data.name],
        eval_report=report,
        base_model=base_model,
        repo_id=config.hub_model_id or str(output_dir),
        model_config=saved.config,
        model_key=config.output_dir if report.results else None,
        model_name=config.hub_model_id or output_dir.name,
        num_parameters=sum(p.numel() for p in saved.parameters()),
        loss_curve=png.name if png else None,
        checkpoint_format=config.checkpoint_format,
    )
    with atomic.atomic_path(output_dir / "README.md") as tmp:
        card.save(tmp)
    if png:
        logger.info("Loss curve: %s", png)
