"""The comparison benchmark (benchmarks/comparison): statistics against independent computations, and a microscopic
comparison through the real trainer that checks the outputs' structure (never which objective wins)."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `benchmarks/` is a folder of scripts at the repository root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.comparison import (  # noqa: E402
    ComparisonSettings,
    RunSpec,
    paired_difference,
    summarise,
    t_quantile_975,
    verdict,
)
from benchmarks.comparison.report import MEASURES, aggregate, markdown_tables, write_outputs  # noqa: E402
from benchmarks.comparison.runner import (  # noqa: E402
    RESULT_FILE, SIMILARITY_FILE, run_all, training_config, training_wall_time)

# ------------------------------------------------------------------------------------------------ statistics


def test_summarise_matches_statistics_module():
    values = [0.61, 0.70, 0.66, 0.58]
    s = summarise(values)
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(statistics.mean(values))
    assert s["std"] == pytest.approx(statistics.stdev(values))
    half = 3.1824 * statistics.stdev(values) / math.sqrt(4)  # t_{0.975, 3}
    assert s["ci95_low"] == pytest.approx(s["mean"] - half)
    assert s["ci95_high"] == pytest.approx(s["mean"] + half)


def test_t_quantiles_and_single_value():
    assert t_quantile_975(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile_975(100) == pytest.approx(1.96)
    with pytest.raises(ValueError, match="at least 2 values"):
        t_quantile_975(0)
    single = summarise([0.5])
    assert single["mean"] == 0.5 and math.isnan(single["std"]) and math.isnan(single["ci95_low"])


def test_paired_difference_uses_common_seeds_and_verdicts():
    a = {0: 0.9, 1: 0.8, 2: 0.85, 3: 0.1}
    b = {0: 0.7, 1: 0.65, 2: 0.7}
    d = paired_difference(a, b)
    assert d["seeds"] == [0, 1, 2]
    assert d["values"] == pytest.approx([0.2, 0.15, 0.15])
    assert d["mean"] == pytest.approx(np.mean([0.2, 0.15, 0.15]))
    assert verdict(d) == "higher"
    assert verdict(paired_difference(b, a)) == "lower"
    assert verdict(paired_difference({0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.5})) == "unclear"
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference({0: 1.0}, {1: 1.0})


def test_design_runs_and_matched_images():
    settings = ComparisonSettings(protocol="scratch")
    settings.validate()
    runs = settings.runs()
    assert len(runs) == len(settings.seeds) * (7 + 2)
    assert {r.config_name for r in runs} == {"clip", "clip_hn", "negclip", "tripletclip", "negative_images",
                                             "cyclip", "tripletclip+cyclip", "clip@2B", "negclip@2B"}
    # CyCLIP's two configurations: CLIP's and TripletCLIP's objectives with CyCLIP's paper's weights, in the trainer.
    for method, loss_type in (("cyclip", "clip"), ("tripletclip+cyclip", "tripletclip"), ("tripletclip", None)):
        config = training_config(settings, RunSpec(method, 0), Path("w"), Path("m"), Path("o"))
        assert config.loss_type == (loss_type or method)
        weights = (config.cyclip_in_modal_weight, config.cyclip_cross_modal_weight)
        assert weights == ((0.25, 0.25) if loss_type else (0.0, 0.0))
    # The doubled-batch baselines see as many images per step as TripletCLIP.
    b = settings.batch_size
    assert settings.images_per_step(RunSpec("tripletclip", 0)) == 2 * b
    assert settings.images_per_step(RunSpec("clip", 0)) == b
    assert settings.images_per_step(RunSpec("clip", 0, 2)) == settings.images_per_step(RunSpec("tripletclip", 0))
    # The shipped protocols: the same world, model and batch; fine-tuning from a base as long as a from-scratch run.
    finetune, scratch = ComparisonSettings.full("finetune"), ComparisonSettings.full("scratch")
    for design in (finetune, scratch):
        design.validate()
        assert {r.config_name for r in design.runs()} == {"clip", "clip_hn", "negclip", "tripletclip",
                                                          "negative_images", "clip@2B", "negclip@2B"}
    assert finetune.world_config() == scratch.world_config() and finetune.model_overrides() == scratch.model_overrides()
    assert scratch.max_train_steps == finetune.base_max_train_steps and len(finetune.seeds) >= 5
    assert len(scratch.seeds) >= 3 and finetune.world_options["sugarcrepe_per_kind"] >= 1000
    assert finetune.world_options["num_winoground"] >= 1000
    # No run sees a training scene more than a few times.
    assert finetune.base_max_train_steps * finetune.base_batch_size / finetune.world_num_train <= 4
    assert scratch.max_train_steps * 2 * scratch.batch_size / scratch.world_num_train <= 8
    with pytest.raises(ValueError, match="unknown method"):
        ComparisonSettings(methods=("clip", "siglip")).validate()
    with pytest.raises(ValueError, match="2 distinct seeds"):
        ComparisonSettings(seeds=(0,)).validate()


def test_aggregate_and_tables_from_hand_made_records():
    def record(config, seed, overall):
        method, _, batch = config.partition("@")
        return {"run": {"method": method, "seed": seed, "batch_multiplier": 2 if batch else 1},
                "config_name": config, "metrics": {"sugarcrepe": {"overall": overall}}}

    records = [record("tripletclip", 0, 0.8), record("tripletclip", 1, 0.7),
               record("clip", 0, 0.6), record("clip", 1, 0.65), record("clip@2B", 0, 0.7), record("clip@2B", 1, 0.7)]
    aggregated = aggregate(records)
    overall = aggregated["summary"]["clip"]["sugarcrepe/overall"]
    assert overall["mean"] == pytest.approx(0.625) and overall["values"] == [0.6, 0.65]
    diff = aggregated["differences_vs_tripletclip"]["clip@2B"]["sugarcrepe/overall"]
    assert diff["values"] == pytest.approx([0.1, 0.0])
    settings = ComparisonSettings(methods=("clip", "tripletclip"), doubled_batch_methods=("clip",), seeds=(0, 1))
    table = markdown_tables(aggregated, settings)
    assert "| SugarCrepe overall (mean of 7) ↑ | 0.625 ± 0.035 | 0.750 ± 0.071 | 0.700 ± 0.000 |" in table
    assert "CLIP (2B batch)" in table and "TripletCLIP minus each configuration" in table


# ------------------------------------------------------------------------------------ microscopic comparison


def test_microscopic_comparison_end_to_end(tmp_path):
    """Two objectives, one doubled-batch baseline, two seeds, three steps each, through the shipped trainer."""
    settings = ComparisonSettings(
        name="test",
        world_num_train=48,
        world_options={"num_test": 12, "sugarcrepe_per_kind": 3, "num_winoground": 7, "num_retrieval": 6,
                       "captions_per_image": 2},
        width=16, layers=1, heads=2, batch_size=4, max_train_steps=3, lr_warmup_steps=1,
        seeds=(0, 1), methods=("clip", "tripletclip"), doubled_batch_methods=("clip",),
    )
    work = tmp_path / "work"
    records = run_all(settings, work, jobs=0, progress=False)
    assert len(records) == 6
    assert sorted(r["run_name"] for r in records) == sorted(
        f"{c}-seed{s}" for c in ("clip", "tripletclip", "clip-2B") for s in (0, 1))
    for record in records:
        assert record["steps"] == 3
        metrics = record["metrics"]
        assert set(metrics) == {"sugarcrepe", "winoground", "retrieval", "tripletdata", "similarity"}
        for benchmark, metric, _, _ in MEASURES:
            value = metrics[benchmark][metric]
            assert (-1.0 if benchmark == "similarity" else 0.0) <= value <= 1.0, (benchmark, metric, value)
        expected_images = 4 * (2 if record["config_name"] == "clip@2B" else 1) * (
            2 if record["config_name"] == "tripletclip" else 1)
        assert record["images_per_step"] == expected_images
        run_dir = work / "runs" / record["run_name"]
        assert (run_dir / "eval_results.json").is_file() and (run_dir / "model.safetensors").is_file()
        with np.load(run_dir / SIMILARITY_FILE) as similarity:
            assert similarity["image_similarity"].shape == similarity["text_similarity"].shape == (12,)
    # Every objective of a seed starts from the same saved initial weights.
    assert len(list((work / "initial-models").iterdir())) == 2

    # A second invocation reuses every finished run instead of training again.
    stamps = {r["run_name"]: (work / "runs" / r["run_name"] / RESULT_FILE).stat().st_mtime_ns for r in records}
    again = run_all(settings, work, jobs=0, progress=False)
    assert [r["run_name"] for r in again] == [r["run_name"] for r in records]
    assert stamps == {r["run_name"]: (work / "runs" / r["run_name"] / RESULT_FILE).stat().st_mtime_ns for r in again}
    ledger = training_wall_time(work, settings)
    assert ledger["invocations"] == 1 and ledger["runs_trained"] == 6 and ledger["seconds"] > 0

    out = tmp_path / "results"
    table = write_outputs(settings, records, work, out, wall_seconds=1.0, machine={"cpu_count": 2, "jobs": 0})
    for name in ("comparison.json", "comparison.md", "comparison.png", "similarity.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "comparison.json").read_text())
    assert set(report["summary"]) == {"clip", "tripletclip", "clip@2B"}
    overall = report["summary"]["tripletclip"]["sugarcrepe/overall"]
    assert overall["n"] == 2 and overall["ci95_low"] <= overall["mean"] <= overall["ci95_high"]
    assert set(report["differences_vs_tripletclip"]) == {"clip", "clip@2B"}
    assert report["configurations"]["clip@2B"]["images_per_step"] == report["configurations"]["tripletclip"][
        "images_per_step"]
    assert len(report["runs"]) == 6
    assert "Winoground group" in table and (out / "comparison.md").read_text() == table


def test_microscopic_finetuning_comparison_from_one_shared_base(tmp_path):
    """The fine-tuning protocol: one CLIP-loss base (built once, evaluated on the way), every run starts from it."""
    settings = ComparisonSettings(
        name="test", protocol="finetune",
        world_num_train=48,
        world_options={"num_test": 12, "sugarcrepe_per_kind": 3, "num_winoground": 7, "num_retrieval": 6,
                       "captions_per_image": 2},
        width=16, layers=1, heads=2, batch_size=4, max_train_steps=2, lr_warmup_steps=1,
        base_batch_size=8, base_max_train_steps=4, base_eval_steps=2, base_criterion=(("sugarcrepe/overall", 0.0),),
        finetune_learning_rate=1e-4, seeds=(0, 1), methods=("clip", "tripletclip+cyclip"), doubled_batch_methods=(),
    )
    work = tmp_path / "work"
    records = run_all(settings, work, jobs=0, progress=False)
    base = json.loads((work / "base" / "base.json").read_text())
    assert sorted(base["evaluations"]) == ["2", "4"] and base["criterion_met_at_step"] == 2
    assert base["passes_over_training_scenes"] == pytest.approx(4 * 8 / 48, abs=0.01)
    assert 0.0 <= base["evaluations"]["4"]["sugarcrepe/overall"] <= 1.0 and base["final_train_loss"] > 0
    assert len(records) == 4
    for record in records:
        used = yaml.safe_load((work / "runs" / record["run_name"] / "training_config.yaml").read_text())
        assert Path(used["model_name_or_path"]) == work / "base" and used["learning_rate"] == 1e-4
        cyclip = record["config_name"] == "tripletclip+cyclip"
        assert (used["cyclip_in_modal_weight"], used["loss_type"]) == ((0.25, "tripletclip") if cyclip else (0.0, "clip"))
    # The base is reused, not rebuilt, by a second invocation; the report states the protocol and the criterion.
    stamp = (work / "base" / "base.json").stat().st_mtime_ns
    run_all(settings, work, jobs=0, progress=False)
    assert (work / "base" / "base.json").stat().st_mtime_ns == stamp
    table = write_outputs(settings, records, work, tmp_path / "out", wall_seconds=1.0, machine={"cpu_count": 2})
    assert "Protocol: fine-tuning" in table and "met at step 2" in table
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["base"]["criterion_met_at_step"] == 2


def test_finetuning_with_a_validation_world_chooses_the_rate_on_clip_alone(tmp_path):
    """With a validation world the base's criterion is read there, the learning rate is chosen by CLIP-only runs
    scored there (no test benchmark read, no other objective trained), and a frozen rate that disagrees with the
    choice stops the comparison before any objective is trained."""
    import dataclasses

    from benchmarks.comparison.report import selection_markdown
    from benchmarks.comparison.runner import load_selection_record

    settings = ComparisonSettings(
        name="test", protocol="finetune",
        world_num_train=48,
        world_options={"num_test": 12, "sugarcrepe_per_kind": 3, "num_winoground": 7, "num_retrieval": 6,
                       "captions_per_image": 2},
        validation_options={"num_test": 0, "sugarcrepe_per_kind": 4, "num_winoground": 14, "num_retrieval": 0},
        width=16, layers=1, heads=2, batch_size=4, max_train_steps=2, lr_warmup_steps=1,
        base_batch_size=8, base_max_train_steps=4, base_eval_steps=2, base_criterion=(("sugarcrepe/overall", 0.0),),
        finetune_learning_rate=1e-4, finetune_learning_rate_candidates=(1e-5, 1e-2),
        seeds=(0, 1), methods=("clip", "tripletclip"), doubled_batch_methods=(),
    )
    work = tmp_path / "work"
    assert run_all(settings, work, jobs=0, progress=False, select_only=True) == []
    validation = work / "validation-world-seed0"
    manifest = json.loads((validation / "world.json").read_text())
    assert manifest["config"]["benchmark_split"] == "validation" and manifest["config"]["num_train"] == 0
    base = json.loads((work / "base" / "base.json").read_text())
    assert base["criterion_read_on"] == "validation world"
    # The base's evaluations during training are those of the validation world: the final one equals an
    # evaluation of the saved base on it; its test scores equal one on the test world.
    from dataset_builders.world import WorldLayout
    from modeling_tripletclip.evaluation import evaluate_model, load_model_and_processor

    model, processor = load_model_and_processor(str(work / "base"))
    on_validation = evaluate_model(model, processor, WorldLayout(validation).benchmark_paths(["sugarcrepe"]))
    on_test = evaluate_model(model, processor, WorldLayout(work / "world-n48-seed0").benchmark_paths(["sugarcrepe"]))
    for kind, value in on_validation["sugarcrepe"].items():
        assert base["evaluations"]["4"][f"sugarcrepe/{kind}"] == pytest.approx(value)
    assert base["test"]["sugarcrepe"] == pytest.approx(on_test["sugarcrepe"])
    selection = load_selection_record(work)
    assert set(selection["candidates"]) == {"1e-05", "0.01"}
    best = max(selection["candidates"], key=lambda r: selection["candidates"][r]["validation"]["sugarcrepe"]["overall"])
    assert selection["chosen_learning_rate"] == pytest.approx(float(best))
    for rate in ("1e-05", "0.01"):
        record = json.loads((work / "selection" / f"clip-lr{rate}" / "result.json").read_text())
        assert record["evaluated_on"] == "validation world" and record["run"]["method"] == "clip"
        assert set(record["metrics"]) == {"sugarcrepe", "winoground"}  # no test triplets, no similarity
        used = yaml.safe_load((work / "selection" / f"clip-lr{rate}" / "training_config.yaml").read_text())
        assert used["learning_rate"] == pytest.approx(float(rate)) and Path(used["eval_world_dir"]) == validation
    assert not (work / "runs").exists()  # choosing trained no objective
    assert "Fine-tuning learning rate, chosen on the validation" in selection_markdown(settings, base, selection)
    # The frozen rate (1e-4) is not the chosen one: the comparison refuses to run until it is written down.
    with pytest.raises(ValueError, match="Write the chosen value into"):
        run_all(settings, work, jobs=0, progress=False)
    assert not (work / "runs").exists()
    frozen = dataclasses.replace(settings, finetune_learning_rate=selection["chosen_learning_rate"])
    records = run_all(frozen, work, jobs=0, progress=False)
    assert len(records) == 4 and all(r["evaluated_on"] == "test benchmarks" for r in records)
    report = write_outputs(frozen, records, work, tmp_path / "out", wall_seconds=1.0, machine={"cpu_count": 2})
    assert "The base on the test benchmarks" in report and "Power, from the measured spread" in report
    power = json.loads((tmp_path / "out" / "comparison.json").read_text())["power"]
    diff = json.loads((tmp_path / "out" / "comparison.json").read_text())[
        "differences_vs_tripletclip"]["clip"]["sugarcrepe/overall"]
    assert power["sugarcrepe/overall"]["detectable_difference"] == pytest.approx(
        12.7062 * diff["std"] / 2 ** 0.5)

    # The results folder keeps what another machine needs: there, with an empty work folder, the base, the
    # selection and every finished run are adopted, nothing is trained again, and the report is the same.
    from benchmarks.comparison.design import config_label
    from benchmarks.comparison.runner import adopt_saved

    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r["run_name"] for r in records)
    assert {p.name for p in (out / "finetune-base").iterdir()} >= {"model.safetensors", "base.json", "selection.json"}
    elsewhere = tmp_path / "elsewhere"
    again = run_all(frozen, elsewhere, jobs=0, progress=False, results_dir=out)
    assert again == records
    assert not list(elsewhere.glob("runs/*/model.safetensors")) and not list(elsewhere.glob("**/checkpoint-*"))
    assert (elsewhere / "base" / "base.json").read_bytes() == (work / "base" / "base.json").read_bytes()
    assert (elsewhere / "base" / "model.safetensors").read_bytes() == (work / "base" / "model.safetensors").read_bytes()
    assert training_wall_time(elsewhere, frozen) == training_wall_time(work, frozen)
    second = write_outputs(frozen, again, elsewhere, tmp_path / "out2", wall_seconds=1.0, machine={"cpu_count": 2})
    assert second == report
    # Runs made with other settings are not adopted (the base, whose settings are the same, is).
    other = dataclasses.replace(frozen, max_train_steps=3)
    assert adopt_saved(other, tmp_path / "third", out) == {"base": 1, "selection": 0, "runs": 0}
    # A run kept without its per-pair similarities counts in the tables; the figure pools the seeds every
    # configuration kept, and says so.
    lost = records[0]
    (elsewhere / "runs" / lost["run_name"] / SIMILARITY_FILE).unlink()
    third = write_outputs(frozen, again, elsewhere, tmp_path / "out3", wall_seconds=1.0, machine={"cpu_count": 2})
    other_seed = 1 - lost["run"]["seed"]
    assert (f"`similarity.png` pools seed {other_seed} of every configuration: per-pair similarities were not kept "
            f"with the results for {config_label(lost['config_name'])} seed {lost['run']['seed']}") in third
    figure = json.loads((tmp_path / "out3" / "comparison.json").read_text())["similarity_figure"]
    assert figure["seeds"] == {"clip": [other_seed], "tripletclip": [other_seed]}
    from benchmarks.comparison.report import pooled_similarities

    run_dirs = {r["run_name"]: elsewhere / "runs" / r["run_name"] for r in again}
    pooled = pooled_similarities(again, run_dirs, ["clip", "tripletclip"], figure["seeds"])
    with np.load(elsewhere / "runs" / f"clip-seed{other_seed}" / SIMILARITY_FILE) as kept:
        assert np.array_equal(pooled["clip"]["image_similarity"], kept["image_similarity"])
    # With no seed common to all, each configuration pools its own and the legend says how many of its runs.
    (elsewhere / "runs" / f"clip-seed{other_seed}" / SIMILARITY_FILE).unlink()
    fourth = write_outputs(frozen, again, elsewhere, tmp_path / "out4", wall_seconds=1.0, machine={"cpu_count": 2})
    assert "pools the seeds whose per-pair values were kept" in fourth


def test_an_interrupted_run_continues_from_its_checkpoint(tmp_path):
    """A run whose process died after a checkpoint (no result.json) continues from it when the comparison is run
    again, instead of training from the start; a run made with other settings starts over."""
    import dataclasses

    from benchmarks.comparison.runner import continue_or_start, prepare_initial_model, prepare_world, training_config
    from modeling_tripletclip.training import train
    from modeling_tripletclip.training.checkpoints import list_checkpoints

    settings = ComparisonSettings(
        name="test", world_num_train=48,
        world_options={"num_test": 8, "sugarcrepe_per_kind": 2, "num_winoground": 7, "num_retrieval": 4,
                       "captions_per_image": 2},
        width=16, layers=1, heads=2, batch_size=4, max_train_steps=4, lr_warmup_steps=1,
        seeds=(0, 1), methods=("clip",), doubled_batch_methods=(), eval_benchmarks=("sugarcrepe",))
    work = tmp_path / "work"
    world = prepare_world(settings, work, progress=False)
    initial = prepare_initial_model(settings, world, 0, work)
    run = settings.runs()[0]
    run_dir = work / "runs" / run.run_name
    # The first half of the run, checkpointed at step 2: the state a kill after that checkpoint leaves.
    half = training_config(settings, run, world, initial, run_dir)
    assert (half.resume_from_checkpoint, half.overwrite_output_dir) == (None, True)
    train(dataclasses.replace(half, checkpointing_steps=2, max_train_steps=2))
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-2"]
    # max_train_steps is not part of a run's identity, so the full run is the same run and continues at step 2.
    again = training_config(settings, run, world, initial, run_dir)
    assert (again.resume_from_checkpoint, again.overwrite_output_dir) == ("latest", False)
    records = run_all(settings, work, jobs=0, progress=False)
    assert records[0]["steps"] == 4
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [entry["step"] for entry in logged if "train/loss" in entry]
    assert steps == sorted(set(steps)) and max(steps) == 4  # no step trained twice
    # Other settings in the same folder: started over, not continued.
    other = dataclasses.replace(settings, learning_rate=1e-3)
    assert continue_or_start(training_config(other, run, world, initial, run_dir)).resume_from_checkpoint is None


def test_detectable_difference_and_seeds_needed_by_hand():
    from benchmarks.comparison.stats import detectable_difference, power_statement, seeds_needed

    assert detectable_difference(0.02, 5) == pytest.approx(2.7764 * 0.02 / 5 ** 0.5)
    assert detectable_difference(0.05, 3) == pytest.approx(4.3027 * 0.05 / 3 ** 0.5)
    # std 0.03: n = 6 gives 2.5706 * 0.03 / sqrt(6) = 0.0315 > 0.03; n = 7 gives 2.4469 * 0.03 / sqrt(7) = 0.0277.
    assert seeds_needed(0.03, 0.03) == 7
    assert seeds_needed(1.0, 0.001, most=50) is None
    differences = {"clip": {"m": {"n": 5, "std": 0.02}}, "negclip": {"m": {"n": 5, "std": 0.04}},
                   "other": {"x": {"n": 5, "std": 0.01}}}
    statement = power_statement(differences, "m", 0.03)
    assert statement["detectable_difference"] == pytest.approx(2.7764 * 0.04 / 5 ** 0.5)
    # 0.0497 > 0.03: not met; std 0.04 needs n = 10 (9 seeds: 2.3060 * 0.04 / 3 = 0.0307; 10: 0.0286).
    assert statement["target_met"] is False and set(statement["per_configuration"]) == {"clip", "negclip"}
    assert statement["seeds_for_target"] == 10 == seeds_needed(0.04, 0.03)
    assert power_statement(differences, "m", 0.05)["target_met"] is True
    assert power_statement(differences, "missing", 0.03)["detectable_difference"] is None


def test_detectable_differences_have_the_power_they_claim_in_simulation():
    """Simulated comparisons with 5 seeds: a true paired difference equal to the interval's half-width is detected
    a little more than half the time, one equal to the 80%-power figure 80% of the time (the simulation does not
    use the t tables' power term)."""
    from benchmarks.comparison.stats import detectable_difference, detectable_difference_at_80_power, t_quantile_975

    rng = np.random.default_rng(0)
    n, std, trials = 5, 0.01, 40_000
    found = {}
    for name, true in (("half-width", detectable_difference(std, n)),
                       ("80% power", detectable_difference_at_80_power(std, n))):
        samples = rng.normal(true, std, size=(trials, n))
        t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / np.sqrt(n))
        found[name] = float(np.mean(np.abs(t) > t_quantile_975(n - 1)))
    assert 0.5 <= found["half-width"] <= 0.6  # 56% with 5 seeds (the noncentral t's median lies above its centre)
    assert found["80% power"] == pytest.approx(0.8, abs=0.02)


def test_command_line_follows_the_options_convention(capsys):
    from benchmarks.comparison.cli import main, parse_args

    options = parse_args(["--protocol", "finetune", "--seeds", "0", "1", "--output_dir", "x", "--jobs", "0"])
    assert (options.protocol, options.seed_list, options.output_dir, options.jobs) == ("finetune", (0, 1), "x", 0)
    assert parse_args(["--output-dir", "y", "--report-only"]).report_only  # the hyphenated spellings still work
    assert main(["--protocol", "pretrain"]) == 2
    assert "--protocol 'pretrain' is not one of scratch, finetune" in capsys.readouterr().err
