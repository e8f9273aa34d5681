"""Model and Space cards, rendered from the templates in ``model_cards/`` through huggingface_hub's card classes.

The YAML header of every card is built from typed metadata (`ModelCardData` with `EvalResult`s, `SpaceCardData`), never
assembled as text, so it is exactly what the Hub expects. The Markdown body comes from a Jinja template:

- ``model_cards/model_card.md``: a TripletCLIP checkpoint (usage snippet, model details, evaluation table,
  training configuration, limitations);
- ``model_cards/space_card.md``: the Gradio Space.

(Dataset cards are written by `dataset_builders.hub_layout.write_dataset_card` from ``model_cards/dataset_card.md``.)

The templates are found in the source checkout (``<repo>/model_cards``) or, once installed, in the ``model_cards``
data package shipped with the wheel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, SpaceCard, SpaceCardData

from dataset_builders.utils.locations import is_local

from ..evaluation.report import EvaluationReport
from ..losses import OBJECTIVES

MODEL_CARD_TEMPLATE = "model_card.md"
SPACE_CARD_TEMPLATE = "space_card.md"
DEFAULT_LICENSE = "apache-2.0"
PLACEHOLDER_REPO_ID = "path/to/tripletclip"
BASE_TAGS = ("tripletclip", "clip", "compositionality", "hard-negatives", "vision-language")


_TASK = "zero-shot-image-classification"


def template_path(name: str) -> Path:
    """Path of the card template ``name`` (e.g. ``"model_card.md"``); see the `model_cards` package."""
    from model_cards import template_path as find

    return find(name)


# ------------------------------------------------------------------------------------------------ model card


def render_model_card(
    training_config: Mapping[str, Any] | None = None,
    datasets: str | Sequence[str] | None = None,
    eval_report: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    license: str = DEFAULT_LICENSE,
    *,
    repo_id: str | None = None,
    model_config: Any = None,
    model_key: str | None = None,
    model_name: str | None = None,
    num_parameters: int | None = None,
    tags: Sequence[str] = (),
    notes: str | None = None,
    loss_curve: str | None = None,
    checkpoint_format: str = "clip",
    template: str | os.PathLike | None = None,
) -> ModelCard:
    """Render the model card of a TripletCLIP checkpoint.

    Args:
        training_config: the resolved training configuration (flag name -> value), shown in the card; its
            ``loss_type``, ``dataset`` and ``model_name_or_path`` fill in what is not given explicitly.
        datasets: the training dataset(s): Hub ids go to the card metadata (``datasets:``), anything else (the
            built-in world, a local folder) is described in the body only.
        eval_report: an `EvaluationReport`, or any form it reads: ``{benchmark: {metric: value}}`` for this model, or
            ``{model: {benchmark: {metric: value}}}`` (then ``model_key`` picks this model; the others are shown beside
            it as baselines).
        base_model: the checkpoint it was fine-tuned from (Hub id), if any.
        license: an SPDX-style Hub license id.
        repo_id: the Hub id (or folder) the usage snippet loads; defaults to a placeholder.
        model_config: the model's configuration (`TripletCLIPConfig` or its dict), for the details table.
        checkpoint_format: the saved form (`loading.CHECKPOINT_FORMATS`): the usage section says what loads it.
        model_key: which model of a multi-model ``eval_report`` this card describes (default: the report's only
            model, else the one named ``model_name``).
        model_name: the name shown in the title and the ``model-index``; defaults to the repo name.
        num_parameters: shown in the details table when given.
        tags: extra Hub tags.
        notes: free Markdown added under "Notes" (e.g. how a converted checkpoint was made).
        loss_curve: file name of a training-loss plot stored beside the card (shown in it).
        template: another Jinja template to render instead of ``model_cards/model_card.md``.

    Returns:
        A `huggingface_hub.ModelCard`; ``card.save(path)`` writes it, ``card.data`` holds the metadata.
    """
    training_config = dict(training_config or {})
    config = _as_dict(model_config)
    repo_id = repo_id or PLACEHOLDER_REPO_ID
    if base_model is None:
        start = training_config.get("model_name_or_path")
        base_model = start if isinstance(start, str) and _is_repo_id(start) else None
    if datasets is None:
        datasets = training_config.get("dataset")
    dataset_list = [datasets] if isinstance(datasets, str) else list(datasets or [])
    hub_datasets = [d for d in dataset_list if _is_repo_id(d)]
    loss_type = training_config.get("loss_type") or config.get("loss_type")

    report = eval_report if isinstance(eval_report, EvaluationReport) else EvaluationReport.from_mapping(
        eval_report, model_key)
    if model_key is None and model_name and model_name in report.results:
        model_key = model_name
    model_name = model_name or Path(repo_id).name or "TripletCLIP"
    key = report.select(model_key)
    world = training_config.get("dataset") == "world"
    eval_results = report.card_results(key, world=world) if key is not None and report.results[key] else None

    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag=_TASK,
        base_model=base_model if base_model and _is_repo_id(base_model) else None,
        datasets=hub_datasets or None,
        tags=_unique([*BASE_TAGS, *([loss_type] if loss_type else []), *tags]),
        model_name=model_name if eval_results else None,
        eval_results=eval_results,
    )
    rows, models = _result_rows(report, key)
    return ModelCard.from_template(
        card_data,
        template_path=str(template or template_path(MODEL_CARD_TEMPLATE)),
        title=model_name,
        summary=_summary(loss_type, base_model, dataset_list),
        repo_id=repo_id,
        details=_details(config, loss_type, base_model, dataset_list, num_parameters, license, checkpoint_format),
        results=rows,
        result_models=models,
        results_note=_results_note(key, models),
        training_data=_training_data(dataset_list),
        training_config=_yaml(training_config) if training_config else None,
        notes=notes,
        loss_curve=loss_curve,
        max_text_length=(config.get("text_config") or {}).get("max_position_embeddings", 77),
        checkpoint_format=checkpoint_format,
    )


def _summary(loss_type, base_model, datasets) -> str:
    what = {
        "tripletclip": "A CLIP model trained with the TripletCLIP objective",
        None: "A TripletCLIP checkpoint",
    }.get(loss_type, f"A CLIP model trained with the `{loss_type}` objective (a baseline of the TripletCLIP paper)")
    parts = [what]
    if base_model:
        parts.append(f"fine-tuned from [`{base_model}`](https://huggingface.co/{base_model})"
                     if _is_repo_id(base_model) else f"fine-tuned from `{base_model}`")
    if datasets:
        parts.append("on " + ", ".join(_describe_dataset(d) for d in datasets))
    return " ".join(parts) + "."


def _describe_dataset(name: str) -> str:
    if name == "world":
        return "the built-in procedural compositional world (`tripletclip data world`)"
    if _is_repo_id(name):
        return f"[`{name}`](https://huggingface.co/datasets/{name})"
    return f"`{name}`"


def _training_data(datasets: Sequence[str]) -> str | None:
    if not datasets:
        return None
    lines = [f"- {_describe_dataset(d)}" for d in datasets]
    return "\n".join(lines) + (
        "\n\nEach training row is a triplet: an image with its caption, a negative caption and a negative image "
        "(TripletData; see the dataset card for its columns)."
    )


def _details(config, loss_type, base_model, datasets, num_parameters, license,
             checkpoint_format="clip") -> list[tuple[str, str]]:
    rows = [("Model type", "`TripletCLIPModel` with its code (a `transformers.CLIPModel` subclass; model_type "
                           "`tripletclip`)" if checkpoint_format == "remote_code" else
             "`CLIPModel` (model_type `clip`); trained as a `TripletCLIPModel`, whose settings `config.json` keeps")]
    vision, text = config.get("vision_config") or {}, config.get("text_config") or {}
    if vision:
        rows.append((
            "Vision encoder",
            f"ViT, {vision.get('image_size')} px images, patch {vision.get('patch_size')}, "
            f"{vision.get('num_hidden_layers')} layers of width {vision.get('hidden_size')}",
        ))
    if text:
        rows.append((
            "Text encoder",
            f"Transformer, {text.get('num_hidden_layers')} layers of width {text.get('hidden_size')}, "
            f"{text.get('max_position_embeddings')} positions, vocabulary {text.get('vocab_size')}",
        ))
    if config.get("projection_dim"):
        rows.append(("Embedding size", str(config["projection_dim"])))
    if num_parameters:
        rows.append(("Parameters", f"{num_parameters / 1e6:.1f}M"))
    if loss_type:
        description = OBJECTIVES[loss_type].description if loss_type in OBJECTIVES else loss_type
        rows.append(("Objective", f"`{loss_type}`: {description}"))
    if base_model:
        rows.append(("Base model", f"`{base_model}`"))
    if datasets:
        rows.append(("Training data", ", ".join(f"`{d}`" for d in datasets)))
    rows.append(("License", license))
    return rows


def _result_rows(report: EvaluationReport, key: str | None) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """The card's table: this model's metrics, with the report's other models beside it."""
    if key is None:
        return [], []
    models = [key] + [name for name in report.models if name != key]
    rows = [(benchmark, metric, [report.format_value(benchmark, v, percent=False) for v in values])
            for benchmark, metric, values in report.rows(models) if metric in report.results[key].get(benchmark, {})]
    return rows, models


def _results_note(key: str | None, models: Sequence[str]) -> str:
    note = ("Accuracies and recalls are fractions in [0, 1], higher is better; `similarity` rows are mean cosine "
            "similarities, descriptive only.")
    if len(models) > 1:
        note += f" The first column is this model (`{key}`); the others were evaluated the same way, as baselines."
    return note


# ------------------------------------------------------------------------------------------------ Space card


def render_space_card(
    title: str = "TripletCLIP: compositional probes",
    models: Sequence[str] = (),
    datasets: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
    sdk_version: str | None = None,
    app_file: str = "app.py",
    emoji: str = "🧩",
    short_description: str = "Does CLIP see the difference? Score captions and hard negatives.",
    model_labels: Mapping[str, str] | None = None,
    limits: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    template: str | os.PathLike | None = None,
) -> SpaceCard:
    """Render the Space's README: front matter (`sdk: gradio`, version, app file, models, datasets) and a short body.

    ``models`` are the Hub ids the Space loads (listed in its metadata, which links the model pages to the Space);
    ``model_labels`` maps each shown model name to where it comes from, for the body; ``limits`` are the app's
    input bounds (``max_megapixels``, ``max_upload_mb``, ``max_captions``, ``max_caption_chars``: the app's
    ``LIMITS``).
    """
    if sdk_version is None:
        import gradio

        sdk_version = gradio.__version__
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=sdk_version,
        app_file=app_file,
        license=license,
        models=[m for m in models if _is_repo_id(m)] or None,
        datasets=[d for d in datasets if _is_repo_id(d)] or None,
        tags=_unique([*BASE_TAGS, *tags]),
        emoji=emoji,
        colorFrom="green",
        colorTo="red",
        pinned=False,
        short_description=short_description,
    )
    return SpaceCard.from_template(
        card_data,
        template_path=str(template or template_path(SPACE_CARD_TEMPLATE)),
        title=title,
        model_labels=dict(model_labels or {}),
        **dict(limits or {}),
    )


# ------------------------------------------------------------------------------------------------ helpers


def _is_repo_id(value: Any) -> bool:
    """True for a Hub id (`dataset_builders.utils.locations`); the built-in world's name is not one."""
    return isinstance(value, str) and value != "world" and not is_local(value)


def _unique(items) -> list[str]:
    return list(dict.fromkeys(str(i) for i in items if i))


def _as_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return config.to_dict()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _yaml(values: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(_plain(values), sort_keys=False, allow_unicode=True, width=100)


__all__ = [
    "render_model_card",
    "render_space_card",
    "template_path",
]
