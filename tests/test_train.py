"""The trainer: exact resume, SIGKILL and resume, two processes, LoRA / frozen towers, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modeling_tripletclip.training import main as train_main
from modeling_tripletclip.training.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    from dataset_builders.world import generate_world

    return generate_world(
        tmp_path_factory.mktemp("world") / "w", num_train=160, seed=0, num_test=24, sugarcrepe_per_kind=6,
        num_winoground=12, num_retrieval=12, progress=False,
    )


def base_flags(world: Path, checkpoint: Path, out: Path, **extra) -> list[str]:
    flags = {
        "output_dir": out,
        "model_name_or_path": checkpoint,
        "dataset": "world",
        "world_dir": world,
        "train_batch_size": 8,
        "max_train_steps": 6,
        "learning_rate": 1e-3,
        "lr_warmup_steps": 2,
        "checkpointing_steps": 3,
        "checkpoints_total_limit": 5,
        "logging_steps": 1,
        "eval_benchmarks": "",
        "eval_before_training": "false",
        "report_to": "jsonl",
        "seed": 0,
    }
    flags.update(extra)
    return [f"--{key}={value}" for key, value in flags.items()]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_straight_run_equals_half_resume_half(tiny_world, tiny_checkpoint, tmp_path):
    straight = tmp_path / "straight"
    train_main(base_flags(tiny_world, tiny_checkpoint, straight))
    halves = tmp_path / "halves"
    # Stop after the step-3 checkpoint by asking for 3 steps, with the schedule of the 6-step run (constant after
    # warmup here, so the schedule does not depend on max_train_steps) ...
    train_main(base_flags(tiny_world, tiny_checkpoint, halves, max_train_steps=3, lr_scheduler="constant"))
    train_main(base_flags(tiny_world, tiny_checkpoint, halves, max_train_steps=6, lr_scheduler="constant",
                          resume_from_checkpoint="latest"))
    reference = tmp_path / "reference"
    train_main(base_flags(tiny_world, tiny_checkpoint, reference, lr_scheduler="constant"))
    a, b = weights(reference), weights(halves)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the straight run"
    # and training changed the weights
    start = weights(tiny_checkpoint)
    assert any(not torch.equal(start[k], a[k]) for k in start)
    state = json.loads((halves / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["step"] == 6
    # the straight cosine run also finished and wrote its metrics, curve and config
    assert (straight / "loss_curve.png").is_file() and (straight / "training_config.yaml").is_file()
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    for key in ("train/loss_real_anchor", "train/loss_negative_anchor", "train/logit_scale",
                "train/learning_rate", "train/samples_per_second", "train/skipped_rows"):
        assert key in logged[-1], key


def test_sigkill_then_resume(tiny_world, tiny_checkpoint, tmp_path):
    out = tmp_path / "killed"
    flags = base_flags(tiny_world, tiny_checkpoint, out, max_train_steps=40, checkpointing_steps=4,
                       train_batch_size=16, checkpoints_total_limit=2)
    # One thread, as in this process (conftest), so the killed run and the in-process runs are bit-comparable.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(REPO / "train_accelerate.py"), *flags], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if any(int(p.name.split("-")[1]) >= 8 for p in list_checkpoints(out)):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "model.safetensors").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in list_checkpoints(out))
    assert killed_at < 40
    train_main(flags + ["--resume_from_checkpoint=latest"])
    assert (out / "model.safetensors").is_file()
    reference = tmp_path / "reference"
    train_main(base_flags(tiny_world, tiny_checkpoint, reference, max_train_steps=40, checkpointing_steps=4,
                          train_batch_size=16, checkpoints_total_limit=2))
    a, b = weights(reference), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a), "the killed-and-resumed run differs from the straight run"


def test_two_processes_give_the_gradients_of_one_process_with_the_doubled_batch(tiny_world, tiny_checkpoint, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    common = dict(max_train_steps=1, train_batch_size=8, checkpointing_steps=100)
    two = base_flags(tiny_world, tiny_checkpoint, tmp_path / "two", save_first_step_gradients=tmp_path / "g2.safetensors", **common)
    one = base_flags(tiny_world, tiny_checkpoint, tmp_path / "one", save_first_step_gradients=tmp_path / "g1.safetensors", **common)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    subprocess.run([*launch, str(REPO / "train_accelerate.py"), *two], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), *one], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    g2, g1 = load_file(tmp_path / "g2.safetensors"), load_file(tmp_path / "g1.safetensors")
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name in g1:
        # Equal up to float32 rounding (the two runs sum in different orders): relative to each tensor's scale, with
        # a floor for gradients that are zero in exact arithmetic (e.g. key biases, which softmax ignores).
        scale = g1[name].abs().max().item()
        torch.testing.assert_close(g2[name], g1[name], rtol=0, atol=1e-5 * scale + 1e-6, msg=name)
    assert any(g1[name].abs().sum() > 0 for name in g1)


@pytest.mark.parametrize("loss_type", ["clip", "negclip", "tripletclip", "clip_hn", "negative_images"])
def test_cyclip_terms_train_with_every_loss_type(tiny_world, tiny_checkpoint, tmp_path, loss_type):
    out = tmp_path / loss_type
    train_main(base_flags(tiny_world, tiny_checkpoint, out, loss_type=loss_type, max_train_steps=2,
                          checkpointing_steps=2, cyclip_in_modal_weight=0.25, cyclip_cross_modal_weight=0.5))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if "train/loss" in r)
    in_modal, cross_modal = first["train/loss_cyclip_in_modal"], first["train/loss_cyclip_cross_modal"]
    assert in_modal > 0 and cross_modal > 0
    contrastive = (first["train/loss_real_anchor"] + first["train/loss_negative_anchor"] if loss_type == "tripletclip"
                   else (first["train/loss_image_to_text"] + first["train/loss_text_to_image"]) / 2)
    assert first["train/loss"] == pytest.approx(contrastive + 0.25 * in_modal + 0.5 * cross_modal, rel=1e-5)
    saved = json.loads((out / "config.json").read_text())["tripletclip"]  # the default form: a plain CLIP config
    assert (saved["cyclip_in_modal_weight"], saved["cyclip_cross_modal_weight"]) == (0.25, 0.5)


def test_negative_cyclip_weight_is_refused():
    from modeling_tripletclip.training import TrainingConfig

    with pytest.raises(ValueError, match="--cyclip_cross_modal_weight cannot be negative"):
        TrainingConfig(cyclip_cross_modal_weight=-0.25).validate()


def test_eval_world_dir_scores_the_benchmarks_of_another_world(tiny_world, tiny_checkpoint, tmp_path):
    """Training on one world and evaluating on a validation world (or on the world while training on another
    dataset): the trainer's scores are those of the other world's benchmarks, recomputed independently here."""
    from dataset_builders.utils.errors import InputError
    from dataset_builders.world import WorldLayout, generate_world
    from modeling_tripletclip.evaluation import evaluate_model, load_model_and_processor
    from modeling_tripletclip.training import TrainingConfig, train

    validation = generate_world(tmp_path / "validation", num_train=0, seed=0, num_test=0, sugarcrepe_per_kind=9,
                                num_winoground=14, num_retrieval=0, benchmark_split="validation", progress=False)
    config = TrainingConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(tiny_checkpoint),
                            dataset="world", world_dir=str(tiny_world), train_batch_size=8, max_train_steps=2,
                            lr_warmup_steps=1, report_to="jsonl", eval_before_training=False,
                            eval_benchmarks="sugarcrepe,winoground", eval_world_dir=str(validation))
    result = train(config)
    scores = next(iter(result.eval_results.values()))
    model, processor = load_model_and_processor(str(tmp_path / "out"))
    expected = evaluate_model(model, processor, WorldLayout(validation).benchmark_paths(["sugarcrepe", "winoground"]))
    assert scores["sugarcrepe"] == pytest.approx(expected["sugarcrepe"])
    assert scores["winoground"] == pytest.approx(expected["winoground"])
    on_training_world = evaluate_model(model, processor, WorldLayout(tiny_world).benchmark_paths(["sugarcrepe"]))
    assert on_training_world["sugarcrepe"] != pytest.approx(expected["sugarcrepe"])  # 6 items per kind there, 9 here
    # A folder that is not a world is refused before any model or data is loaded.
    with pytest.raises(InputError, match="--eval_world_dir .* is not a finished world"):
        train(TrainingConfig(output_dir=str(tmp_path / "bad"), model_name_or_path=str(tiny_checkpoint),
                             dataset="world", world_dir=str(tiny_world), eval_world_dir=str(tmp_path)))
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_lora_trains_only_adapters_and_the_merged_model_loads(tiny_world, tiny_checkpoint, tmp_path):
    from transformers import AutoModel

    out = tmp_path / "lora"
    train_main(base_flags(tiny_world, tiny_checkpoint, out, lora="true", lora_r=4, lora_alpha=8, max_train_steps=3,
                          learning_rate=1e-2))
    assert (out / "lora_adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModel.from_pretrained(out)
    assert type(merged).__name__ == "CLIPModel"  # the default form: a plain CLIP checkpoint
    start, after = weights(tiny_checkpoint), merged.state_dict()
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    assert changed, "LoRA changed nothing"
    assert all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed), sorted(changed)[:5]


def test_frozen_vision_tower_stays_fixed(tiny_world, tiny_checkpoint, tmp_path):
    out = tmp_path / "lit"
    train_main(base_flags(tiny_world, tiny_checkpoint, out, freeze="vision", max_train_steps=3, learning_rate=1e-2))
    start, after = weights(tiny_checkpoint), weights(out)
    frozen = [k for k in start if k.startswith(("vision_model.", "visual_projection."))]
    trained = [k for k in start if k.startswith(("text_model.", "text_projection."))]
    assert frozen and all(torch.equal(start[k], after[k]) for k in frozen)
    assert any(not torch.equal(start[k], after[k]) for k in trained)


# ------------------------------------------------------------------------------------------------------ bad input


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit):
        train_main(["--learning_rat", "1e-3"])  # a prefix of --learning_rate: must not match it
    assert "unrecognized arguments" in capsys.readouterr().err


def test_impossible_combinations_fail_before_training():
    from modeling_tripletclip.training.config import TrainingConfig

    with pytest.raises(ValueError, match="--lora and --freeze both decide"):
        TrainingConfig(lora=True, freeze="text").validate()
    with pytest.raises(ValueError, match="is not divisible by the 3 processes"):
        TrainingConfig(train_batch_size=64).validate_world_size(3)
    with pytest.raises(ValueError, match="--loss_type 'triplet' is not one of"):
        TrainingConfig(loss_type="triplet").validate()
    with pytest.raises(ValueError, match="either --preset .* or --model_name_or_path"):
        TrainingConfig(preset="tiny", model_name_or_path="x").validate()


def test_yaml_config_and_flag_override(tmp_path):
    from modeling_tripletclip.training import parse_args

    (tmp_path / "run.yaml").write_text("learning_rate: 0.001\nloss_type: negclip\nmax_train_steps: 7\n")
    config = parse_args(["--config", str(tmp_path / "run.yaml"), "--max_train_steps", "9"])
    assert (config.learning_rate, config.loss_type, config.max_train_steps) == (0.001, "negclip", 9)
    (tmp_path / "bad.yaml").write_text("learning_rat: 0.001\n")
    with pytest.raises(ValueError, match="unknown settings learning_rat"):
        parse_args(["--config", str(tmp_path / "bad.yaml")])


def test_tripletclip_loss_on_data_without_negative_images(tmp_path, tiny_checkpoint):
    import datasets
    from PIL import Image

    from dataset_builders.hub_layout import write_dataset

    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  "negative_caption": datasets.Value("string")})
    rows = [{"image": Image.new("RGB", (32, 32), (i * 20, 0, 0)), "caption": f"a red square {i}",
             "negative_caption": f"a blue square {i}"} for i in range(8)]
    write_dataset(iter(rows), tmp_path / "negclip-data", features)
    flags = ["--dataset", str(tmp_path / "negclip-data"), "--model_name_or_path", str(tiny_checkpoint),
             "--output_dir", str(tmp_path / "out"), "--eval_benchmarks", ""]
    with pytest.raises(ValueError, match="needs the column\\(s\\) negative_image.*--loss_type clip or negclip"):
        train_main(flags)
    # NegCLIP needs only negative captions: the same data trains
    train_main(flags + ["--loss_type", "negclip", "--max_train_steps", "2", "--train_batch_size", "4",
                        "--report_to", "jsonl", "--overwrite_output_dir"])
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_output_dir_holding_another_run_and_corrupt_checkpoint_fallback(tiny_world, tiny_checkpoint, tmp_path, caplog):
    out = tmp_path / "run"
    train_main(base_flags(tiny_world, tiny_checkpoint, out, max_train_steps=4, checkpointing_steps=2))
    with pytest.raises(ValueError, match="holds a run with another configuration"):
        train_main(base_flags(tiny_world, tiny_checkpoint, out, max_train_steps=4, loss_type="negclip"))
    with pytest.raises(ValueError, match="already holds this run.*--resume_from_checkpoint latest"):
        train_main(base_flags(tiny_world, tiny_checkpoint, out, max_train_steps=4))
    # Corrupt the newest checkpoint: resuming falls back to the one before, with a warning.
    newest = list_checkpoints(out)[-1]
    assert newest.name == "checkpoint-4"
    (newest / "model.safetensors").write_bytes(b"not a safetensors file")
    with caplog.at_level("INFO"):
        train_main(base_flags(tiny_world, tiny_checkpoint, out, max_train_steps=4, resume_from_checkpoint="latest"))
    assert "checkpoint-4 cannot be loaded" in caplog.text
    assert "Resumed from" in caplog.text and "checkpoint-2" in caplog.text


def test_streams_official_webdataset_shards_and_counts_bad_samples(tmp_path, tiny_checkpoint):
    from test_data_webdataset import make_official_shards

    shards, good = make_official_shards(tmp_path / "shards", num_shards=2, per_shard=6, bad=True)
    out = tmp_path / "wds-run"
    train_main(["--dataset", ",".join(str(s) for s in shards), "--model_name_or_path", str(tiny_checkpoint),
                "--output_dir", str(out), "--train_batch_size", "4", "--max_train_steps", "2", "--streaming",
                "--logging_steps", "1", "--report_to", "jsonl", "--eval_benchmarks", ""])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "train/loss" in r]
    # Shard 0 holds a corrupt image, a sample without a negative image and an empty caption, all within the first
    # rows read: counted and replaced, so every batch still had 4 triplets.
    assert logged[-1]["train/skipped_rows"] == 3
    assert (out / "model.safetensors").is_file()
