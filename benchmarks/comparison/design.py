"""The design of the comparison: the world, the model, the objectives, and the runs that are compared.

Every objective trains the same model (same architecture, same random initial weights for a given seed), on the
same world, with the same optimizer, schedule, batch of B triplets and number of optimizer steps: the paper's
protocol. Objectives that use negative images (TripletCLIP, LaCLIP+HN, negative images only) encode 2B images per
step, CLIP and NegCLIP only B; so CLIP and NegCLIP are also trained with a batch of 2B pairs for the same number of
steps ("matched images seen"). The doubled batch, rather than doubled steps, keeps the optimizer updates and the
learning-rate schedule identical and gives the same width of softmax (2B candidates per image) and about the same
encoder work per step as TripletCLIP, so the second comparison matches data *and* compute.

Two protocols. ``scratch``: every objective trains from the same random initial weights (per seed), as the paper
pretrains. ``finetune`` (the paper's Table 7 fine-tunes OpenAI CLIP): one shared base is first pretrained with the
plain CLIP loss on the world's positive pairs only, then every objective is fine-tuned from that same base with the
same settings; the seeds vary the fine-tuning data order. Its base's plateau criterion and its one choice made on data
(the fine-tuning learning rate, on the CLIP baseline alone) are read on a validation world: the same seed and rules
with held-out scenes of its own, apart from the test benchmarks every run is finally scored on.

The paper's CyCLIP ablation adds CyCLIP's two consistency terms (weights 0.25 and 0.25, as in CyCLIP's paper) to
CLIP ("CyCLIP") and to TripletCLIP ("CyCLIP + TripletCLIP"); nothing else changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from modeling_tripletclip.losses import OBJECTIVES, objective

#: CyCLIP's paper's weights of its in-modal and cross-modal consistency terms.
CYCLIP_WEIGHTS = (0.25, 0.25)


@dataclass(frozen=True)
class Method:
    """A compared training method: the paper's name, a `TripletCLIPConfig.loss_type`, and whether CyCLIP's
    consistency terms are added to it."""

    label: str
    loss_type: str
    cyclip: bool = False


#: The methods compared, by configuration name.
METHODS: dict[str, Method] = {
    **{name: Method(OBJECTIVES[name].label, name) for name in ("clip", "clip_hn", "negclip", "tripletclip",
                                                                "negative_images")},
    "cyclip": Method("CyCLIP", "clip", cyclip=True),
    "tripletclip+cyclip": Method("CyCLIP + TripletCLIP", "tripletclip", cyclip=True),
}
#: How the compared runs start: from random weights, or from one shared CLIP-pretrained base.
PROTOCOLS = ("scratch", "finetune")
#: Objectives also trained with a doubled batch, to match the images seen per step.
DOUBLED_BATCH_METHODS = ("clip", "negclip")


@dataclass(frozen=True)
class RunSpec:
    """One training run: a method (a key of :data:`METHODS`), a seed and a batch size (``batch_multiplier`` x the
    comparison's B)."""

    method: str
    seed: int
    batch_multiplier: int = 1

    @property
    def loss_type(self) -> str:
        return METHODS[self.method].loss_type

    @property
    def cyclip_weights(self) -> tuple[float, float]:
        """The in-modal and cross-modal CyCLIP weights of this run (0 without CyCLIP)."""
        return CYCLIP_WEIGHTS if METHODS[self.method].cyclip else (0.0, 0.0)

    @property
    def config_name(self) -> str:
        """The compared configuration, e.g. ``tripletclip`` or ``clip@2B``."""
        return self.method if self.batch_multiplier == 1 else f"{self.method}@{self.batch_multiplier}B"

    @property
    def run_name(self) -> str:
        return f"{self.config_name.replace('@', '-')}-seed{self.seed}"


def config_label(config_name: str) -> str:
    """A reader's name for a configuration: ``clip@2B`` -> ``CLIP (2B batch)``."""
    method, _, batch = config_name.partition("@")
    label = METHODS[method].label if method in METHODS else method
    return f"{label} ({batch} batch)" if batch else label


@dataclass
class ComparisonSettings:
    """Everything that determines the comparison. ``full()`` and ``smoke()`` are the two shipped settings.

    The world options are `dataset_builders.world.WorldConfig` fields; the model is the ``tiny`` preset with the
    overrides below (the same architecture for every objective).
    """

    name: str = "full"
    protocol: str = "scratch"
    # ---- world (identical for every run)
    world_seed: int = 0
    world_num_train: int = 20_000
    world_options: dict[str, Any] = field(default_factory=dict)
    # ---- model: the tiny preset with these overrides
    image_size: int = 64
    patch_size: int = 16
    width: int = 96
    layers: int = 2
    heads: int = 3
    # ---- optimisation (the trainer's defaults, i.e. the paper's AdamW settings, unless stated)
    batch_size: int = 32
    max_train_steps: int = 600
    learning_rate: float = 5e-4
    lr_warmup_steps: int = 50
    # ---- fine-tuning protocol: the shared base (CLIP loss, positive pairs only), then every objective from it
    base_seed: int = 0
    base_batch_size: int = 64
    base_max_train_steps: int = 3000
    base_eval_steps: int = 500
    #: The base has left the plateau when every one of these held-out scores is reached (``benchmark/metric``).
    base_criterion: tuple[tuple[str, float], ...] = (("sugarcrepe/replace_obj", 0.70), ("sugarcrepe/swap", 0.62))
    #: Fine-tuning learning rate of every objective; chosen by `select_finetune_learning_rate` (CLIP only, on the
    #: validation world) among the candidates, and frozen here before the comparison is run.
    finetune_learning_rate: float = 1e-4
    finetune_learning_rate_candidates: tuple[float, ...] = (3e-5, 1e-4, 3e-4)
    #: Benchmark sizes of the validation world (same seed and rules, held-out scenes of its own): the base's
    #: plateau criterion and the choice of settings are read on it, never on the test benchmarks. Empty: no
    #: validation world (the base is then evaluated on the test benchmarks, as a from-scratch run is).
    validation_options: dict[str, Any] = field(default_factory=dict)
    # ---- runs
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = tuple(METHODS)
    doubled_batch_methods: tuple[str, ...] = DOUBLED_BATCH_METHODS
    eval_benchmarks: tuple[str, ...] = ("sugarcrepe", "winoground", "retrieval", "tripletdata")

    @classmethod
    def full(cls, protocol: str = "finetune") -> ComparisonSettings:
        """The shipped settings of each protocol: a world large enough not to be memorised (64,000 scenes: the
        fine-tuning base sees each about 4 times, a fine-tuning run 0.4 (B) or 0.8 (2B) times), the tiny preset
        unchanged (8-px patches, width 128, 4 layers), held-out benchmarks of 1,000 items per kind, batch 64.

        Fine-tuning (primary): one CLIP-loss base of 4,000 steps, read on a validation world; every objective then
        fine-tunes 400 steps, seeds 0-4. From scratch (secondary): every objective trains as long as the base did
        (4,000 steps) from the same random weights per seed, seeds 0-2.
        """
        shared = dict(
            protocol=protocol,
            world_num_train=64_000,
            world_options={"num_test": 1000, "sugarcrepe_per_kind": 1000, "num_winoground": 1000,
                           "num_retrieval": 1000},
            patch_size=8, width=128, layers=4, heads=4,
            batch_size=64, lr_warmup_steps=50,
            methods=("clip", "clip_hn", "negclip", "tripletclip", "negative_images"),
        )
        if protocol == "scratch":
            return cls(**shared, max_train_steps=4000, seeds=(0, 1, 2))
        return cls(
            **shared,
            validation_options={"num_test": 0, "sugarcrepe_per_kind": 500, "num_winoground": 500,
                                "num_retrieval": 0},
            max_train_steps=400, base_batch_size=64, base_max_train_steps=4000, base_eval_steps=500,
            # Frozen from `--select_settings` (CLIP only, validation world; benchmarks/README.md) before the comparison.
            finetune_learning_rate=3e-5,
            seeds=(0, 1, 2, 3, 4),
        )

    @classmethod
    def smoke(cls, protocol: str = "scratch") -> ComparisonSettings:
        """A microscopic version of the full design (every objective, both comparisons, 3 seeds) for a quick check
        that the whole pipeline runs; its numbers mean nothing."""
        return cls(
            name="smoke", protocol=protocol, base_batch_size=16, base_max_train_steps=6, base_eval_steps=3,
            world_num_train=400,
            world_options={"num_test": 48, "sugarcrepe_per_kind": 12, "num_winoground": 28, "num_retrieval": 24,
                           "captions_per_image": 3},
            validation_options={"num_test": 0, "sugarcrepe_per_kind": 8, "num_winoground": 14, "num_retrieval": 0}
            if protocol == "finetune" else {},
            finetune_learning_rate_candidates=(1e-4,),  # the selection runs, and agrees with the frozen value
            width=32, layers=1, heads=2,
            batch_size=16, max_train_steps=10, lr_warmup_steps=2,
        )

    def validate(self) -> None:
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        unknown = [m for m in (*self.methods, *self.doubled_batch_methods) if m not in METHODS]
        if unknown:
            problems.append(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        if len(set(self.seeds)) < 2:
            problems.append(f"at least 2 distinct seeds are needed for a spread, got {list(self.seeds)}")
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.width % self.heads:
            problems.append(f"width {self.width} is not divisible by heads {self.heads}")
        for name in ("batch_size", "max_train_steps", "width", "layers", "world_num_train"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.world_num_train < 2 * self.batch_size:
            problems.append(
                f"world_num_train {self.world_num_train} is below one doubled batch ({2 * self.batch_size})")
        if problems:
            raise ValueError("Invalid comparison settings:\n  - " + "\n  - ".join(problems))

    def runs(self) -> list[RunSpec]:
        """Every run, in the order they are trained: TripletCLIP and the main baselines first, so that an
        interrupted comparison (resumable) already holds the central comparisons; all seeds of a configuration
        together."""
        specs = [RunSpec(m, s) for m in self.methods for s in self.seeds]
        specs += [RunSpec(m, s, 2) for m in self.doubled_batch_methods for s in self.seeds]
        priority = ("tripletclip", "clip", "clip@2B", "negclip", "clip_hn", "negative_images", "negclip@2B",
                    "cyclip", "tripletclip+cyclip")

        def rank(run: RunSpec) -> tuple[int, int]:
            name = run.config_name
            return (priority.index(name) if name in priority else len(priority), self.seeds.index(run.seed))

        return sorted(specs, key=rank)

    def relative_cost(self, run: RunSpec) -> float:
        """Encoder work per step relative to CLIP at batch B (an image and a caption cost about the same here)."""
        needs = objective(run.loss_type)
        images = 2 if needs.needs_negative_images else 1
        captions = 2 if needs.needs_negative_captions else 1
        return run.batch_multiplier * (images + captions) / 2

    def images_per_step(self, run: RunSpec) -> int:
        return self.batch_size * run.batch_multiplier * (2 if objective(run.loss_type).needs_negative_images else 1)

    def model_overrides(self) -> dict[str, Any]:
        """`create_model_and_processor("tiny", ...)` overrides: the same two towers for every objective."""
        tower = {"hidden_size": self.width, "intermediate_size": 4 * self.width, "num_hidden_layers": self.layers,
                 "num_attention_heads": self.heads, "projection_dim": self.width}
        return {
            "projection_dim": self.width,
            "vision_config": {**tower, "image_size": self.image_size, "patch_size": self.patch_size},
            "text_config": dict(tower),
        }

    def world_config(self) -> dict[str, Any]:
        return {"seed": self.world_seed, "num_train": self.world_num_train, "image_size": self.image_size,
                **self.world_options}

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["seeds"] = list(self.seeds)
        values["methods"] = list(self.methods)
        values["doubled_batch_methods"] = list(self.doubled_batch_methods)
        values["eval_benchmarks"] = list(self.eval_benchmarks)
        values["base_criterion"] = [list(pair) for pair in self.base_criterion]
        values["finetune_learning_rate_candidates"] = list(self.finetune_learning_rate_candidates)
        if self.protocol != "finetune":  # the base's settings do not concern a from-scratch comparison
            for name in ("base_seed", "base_batch_size", "base_max_train_steps", "base_eval_steps", "base_criterion",
                         "finetune_learning_rate", "finetune_learning_rate_candidates", "validation_options"):
                values.pop(name)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ComparisonSettings:
        """The settings :meth:`to_dict` wrote."""
        values = dict(values)
        for key in ("seeds", "methods", "doubled_batch_methods", "eval_benchmarks",
                    "finetune_learning_rate_candidates"):
            if key in values:
                values[key] = tuple(values[key])
        if "base_criterion" in values:
            values["base_criterion"] = tuple(tuple(pair) for pair in values["base_criterion"])
        return cls(**values)

    def base_settings(self) -> dict[str, Any]:
        """What determines the fine-tuning protocol's base: the world, the model and the base's training."""
        values = self.to_dict()
        keys = ("world_seed", "world_num_train", "world_options", "image_size", "patch_size", "width", "layers",
                "heads", "learning_rate", "lr_warmup_steps", "base_seed", "base_batch_size", "base_max_train_steps",
                "base_eval_steps", "validation_options")
        return {key: values[key] for key in keys}

    def selection_settings(self) -> dict[str, Any]:
        """What determines the choice of the fine-tuning learning rate: the base and the fine-tuning run's shape."""
        values = self.to_dict()
        keys = ("batch_size", "max_train_steps", "finetune_learning_rate_candidates", "eval_benchmarks")
        return {"base": self.base_settings(), **{key: values[key] for key in keys}}

    def validation_world_config(self) -> dict[str, Any] | None:
        """The validation world's `generate_world` options (same seed and rules, no training part), or None."""
        if not self.validation_options:
            return None
        return {"seed": self.world_seed, "num_train": 0, "image_size": self.image_size,
                "benchmark_split": "validation", **self.validation_options}
