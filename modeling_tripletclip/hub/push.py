"""Publish a model, a dataset or the Space on the Hugging Face Hub.

Every push happens in two steps:

1. **Stage**: assemble, in a local folder, exactly the files the repository will hold (for a model: safetensors
   weights (a plain CLIP checkpoint by default, or the remote-code form), the processor and the card; for a dataset: the parquet shards, the card and its sample
   grid; for the Space: the app, its requirements, examples, card and model configuration). A dry run stops here,
   so the folder can be inspected and loaded like the published repository.
2. **Upload**: `HfApi.create_repo` then one `HfApi.upload_folder` commit of the staged folder.

The token and the network are checked before anything is staged or uploaded: a missing token, or a machine in
offline mode (``HF_HUB_OFFLINE=1``), stops the push with a message saying how to fix it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataset_builders.utils import atomic
from dataset_builders.utils.errors import InputError
from dataset_builders.utils.locations import is_local
from dataset_builders.utils.output_folders import LOCK_FILE, hold_folder

from ..evaluation.report import EvaluationReport
from . import cards

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
STAGING_MARKER = ".tripletclip-staging"
#: Written last, once a staging folder is complete: every staged file with its SHA-256. A folder without it (an
#: interrupted staging) is never uploaded; the next run assembles it again.
STAGED_RECORD = ".tripletclip-staged.json"
EVAL_RESULTS_FILE = "eval_results.json"
TRAINING_CONFIG_FILES = ("training_config.yaml", "training_config.json")
LOSS_CURVE_FILE = "loss_curve.png"
SPACE_MODELS_FILE = "models.json"
#: The self-contained modules of the package the Space uses, staged beside app.py (standard library and Pillow only).
SPACE_MODULES = {"rules.py": "dataset_builders.synthesis.rules", "images.py": "dataset_builders.utils.images"}
SPACE_IGNORE = ("__pycache__", "*.pyc", ".gradio", "flagged", "README.md", "models.json", "models", "screenshot.png")
MODEL_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json", "*.py", "processor_config.json",
               "preprocessor_config.json", "tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt")


class PushError(InputError):
    """A push cannot go ahead; the message names the problem and the fix. Nothing was uploaded."""


@dataclass
class StagedFolder:
    """A folder assembled for upload: exactly what the Hub repository ``repo_id`` will hold."""

    path: Path
    repo_id: str
    repo_type: str
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[tuple[str, int]]:
        """``(path inside the repository, size in bytes)`` of every file that will be uploaded, sorted."""
        found = []
        for path in sorted(self.path.rglob("*")):
            if path.is_file() and path.name not in (STAGING_MARKER, LOCK_FILE):
                found.append((path.relative_to(self.path).as_posix(), path.stat().st_size))
        return found

    def summary(self) -> str:
        """A table of the files and their sizes, with the total."""
        files = self.files
        width = max((len(name) for name, _ in files), default=4)
        lines = [f"{self.repo_type} repository {self.repo_id} <- {self.path}", ""]
        lines += [f"  {name:<{width}}  {_human_size(size):>9}" for name, size in files]
        lines += ["", f"  {len(files)} files, {_human_size(sum(size for _, size in files))}"]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ checks


def check_repo_id(repo_id: str, repo_type: str = "model") -> str:
    """Return ``repo_id`` if it is a valid Hub id (``name`` or ``namespace/name``), else raise `PushError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    example = {"model": "your-name/tripletclip-vit-b-32", "dataset": "your-name/tripletdata",
               "space": "your-name/tripletclip-demo"}[repo_type]
    try:
        validate_repo_id(repo_id)
        if not repo_id or repo_id.strip() != repo_id:
            raise HFValidationError("empty or padded with spaces")
    except HFValidationError as error:
        raise PushError(
            f"{repo_id!r} is not a valid Hub repository id ({error}). Use 'namespace/name' with letters, digits, "
            f"'-', '_' and '.', at most 96 characters, e.g. --repo_id {example}."
        ) from None
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The token to upload with: ``token`` if given, else huggingface_hub's (``HF_TOKEN``, then the file written by
    ``hf auth login``). Raises `PushError` when the machine is offline or no token is found."""
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise PushError(
            "This machine is in offline mode (HF_HUB_OFFLINE=1), so nothing can be uploaded. Unset HF_HUB_OFFLINE "
            "on a machine with network access to push, or add --dry_run to assemble and inspect the folder only."
        )
    token = token or get_token()
    if not token:
        raise PushError(
            "No Hugging Face token found. Log in with `hf auth login`, set the HF_TOKEN environment variable, or "
            "pass --token; the token needs write access (https://huggingface.co/settings/tokens)."
        )
    return token


def check_staging_dir(staging_dir: str | os.PathLike | None) -> None:
    """Raise `PushError` unless ``staging_dir`` is None, new, empty, or a staging folder of an earlier push."""
    if staging_dir is None:
        return
    path = Path(staging_dir)
    if path.exists() and not path.is_dir():
        raise PushError(f"--output_dir {path} is a file; give a folder (new or empty).")
    if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()) and not (path / STAGING_MARKER).exists():
        raise PushError(
            f"--output_dir {path} is not empty and was not made by `tripletclip push`; give a new or empty "
            f"folder so that nothing of yours is overwritten or uploaded by mistake."
        )


def prepare_staging_dir(staging_dir: str | os.PathLike | None, repo_type: str) -> Path:
    """A fresh folder to assemble into: a new temporary folder, or ``staging_dir`` if it is new, empty or a staging
    folder from an earlier run (which is then emptied)."""
    check_staging_dir(staging_dir)
    if staging_dir is None:
        path = Path(tempfile.mkdtemp(prefix=f"tripletclip-push-{repo_type}-"))
    else:
        path = Path(staging_dir)
        path.mkdir(parents=True, exist_ok=True)
        for item in path.iterdir():  # an earlier staging; the lock of this run stays
            if item.name != LOCK_FILE:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    (path / STAGING_MARKER).write_text(f"{repo_type}\n")
    return path


# ------------------------------------------------------------------------------------------------ model


def stage_model(
    source: str | os.PathLike,
    repo_id: str,
    staging_dir: str | os.PathLike | None = None,
    *,
    eval_results: str | os.PathLike | None = None,
    eval_model: str | None = None,
    processor: str | os.PathLike | None = None,
    datasets: Sequence[str] | None = None,
    base_model: str | None = None,
    license: str | None = None,
    checkpoint_format: str = "clip",
    as_written: bool = False,
) -> StagedFolder:
    """Assemble a model repository from the checkpoint folder ``source``.

    With ``as_written`` (the trainer's ``--push_to_hub``: its final folder was written for ``repo_id``, card
    included), the folder's release files are staged exactly as they are, byte for byte, and nothing is rendered.

    The staged folder holds the weights (safetensors) in the form ``checkpoint_format`` (`loading.CHECKPOINT_FORMATS`:
    by default ``clip``, a plain ``CLIPModel`` checkpoint that every CLIP client loads with no flag, the TripletCLIP
    settings kept in ``config.json``; ``remote_code``: ``auto_map`` and the model's code), the processor, and a model
    card. A checkpoint already in that form (what the trainer writes) has its files linked or copied as they are:
    the weights are not loaded nor saved again. The card's results come from ``eval_results`` (default:
    ``eval_results.json`` in ``source``, a report ``{model: {benchmark: {metric: value}}}`` or
    ``{benchmark: {metric: value}}``; ``eval_model`` picks the model of a multi-model report), its training
    configuration from ``training_config.yaml``/``.json`` in ``source``, and its metadata (datasets, base model,
    license) from the arguments, else from a card already in ``source``.
    """
    from ..configuration_tripletclip import TripletCLIPConfig
    from ..loading import (
        check_checkpoint_folder,
        check_checkpoint_format,
        checkpoint_format_of,
        load_processor,
        load_tripletclip,
        save_checkpoint,
    )

    source = Path(source)
    if not source.is_dir():
        raise PushError(f"{source} is not a folder. Give the folder of a trained checkpoint (written by the trainer "
                        f"or by `save_pretrained`).")
    try:
        check_checkpoint_format(checkpoint_format)
        check_checkpoint_folder(source)
    except InputError as error:
        raise PushError(f"Cannot push {source}: {error}") from None
    if as_written:
        if checkpoint_format_of(source) != checkpoint_format or not (source / "README.md").is_file():
            raise PushError(f"{source} is not a final folder written in the {checkpoint_format!r} form with its card; "
                            f"push it with `tripletclip push model`, which assembles one.")
        out = prepare_staging_dir(staging_dir, "model")
        _copy_checkpoint(source, out)
        for name in ("README.md", EVAL_RESULTS_FILE, LOSS_CURVE_FILE, *TRAINING_CONFIG_FILES):
            if (source / name).is_file():
                _link_or_copy(source / name, out / name)
        return StagedFolder(out, repo_id, "model")
    report_path = Path(eval_results) if eval_results else source / EVAL_RESULTS_FILE
    if eval_results and not report_path.is_file():
        raise PushError(f"--eval_results {report_path} does not exist; give the JSON report of `tripletclip evaluate`.")
    try:
        model_config = TripletCLIPConfig.from_pretrained(source)
    except (ValueError, OSError) as error:
        raise PushError(f"Cannot push {source}: {error}") from None
    try:
        model_processor = load_processor(processor or source)
    except InputError as error:
        raise PushError(
            f"{processor or source} holds no processor (tokenizer and image processor) to publish with the model "
            f"({error}). Save one next to the weights with `processor.save_pretrained({str(source)!r})`, "
            f"or pass --processor PATH_OR_ID."
        ) from None

    existing = _existing_card_data(source / "README.md", "model")
    training_config = _read_training_config(source)
    report = None
    if report_path.is_file():
        try:
            report = EvaluationReport.from_mapping(_read_json(report_path, "evaluation report"))
            if eval_model is None:
                eval_model = report.key_for(source, (training_config or {}).get("output_dir"))
            report.select(eval_model)
        except ValueError as error:
            raise PushError(f"{report_path}: {error}") from None

    out = prepare_staging_dir(staging_dir, "model")
    if checkpoint_format_of(source) == checkpoint_format:
        _copy_checkpoint(source, out)
        if processor is not None:
            model_processor.save_pretrained(out)
    else:
        try:
            model = load_tripletclip(source)
        except (ValueError, OSError) as error:
            raise PushError(f"Cannot push {source}: {error}") from None
        save_checkpoint(model, out, processor=model_processor, checkpoint_format=checkpoint_format)
    if checkpoint_format == "remote_code":
        _point_auto_map_at(out / "config.json", repo_id)
    notes = []
    extras = (report_path if report is not None else None, source / LOSS_CURVE_FILE,
              *(source / n for n in TRAINING_CONFIG_FILES))
    for extra in extras:
        if extra is not None and extra.is_file():
            shutil.copy2(extra, out / (EVAL_RESULTS_FILE if extra == report_path else extra.name))
    if report is None:
        notes.append(f"no {EVAL_RESULTS_FILE} next to the checkpoint: the card has no evaluation results "
                     f"(run `tripletclip evaluate` and pass --eval_results)")

    card = cards.render_model_card(
        training_config=training_config,
        datasets=list(datasets) if datasets else existing.get("datasets"),
        eval_report=report,
        base_model=base_model or existing.get("base_model"),
        license=license or existing.get("license") or cards.DEFAULT_LICENSE,
        repo_id=repo_id,
        model_config=model_config,
        model_key=eval_model,
        num_parameters=_count_parameters(out),
        loss_curve=LOSS_CURVE_FILE if (out / LOSS_CURVE_FILE).is_file() else None,
        checkpoint_format=checkpoint_format,
    )
    card.save(out / "README.md")
    return StagedFolder(out, repo_id, "model", notes)


def _point_auto_map_at(config_file: Path, repo_id: str) -> None:
    """Name the repository in each ``auto_map`` entry (``repo_id--module.Class``, transformers' own form).

    A copy of the configuration made by another class (``CLIPModel.from_pretrained(repo).save_pretrained(dir)``
    keeps ``auto_map`` but not the code files) then still finds the code, in the repository it came from, instead of
    leaving a folder that ``trust_remote_code=True`` cannot load."""
    values = json.loads(config_file.read_text(encoding="utf-8"))
    auto_map = values.get("auto_map") or {}
    values["auto_map"] = {auto: reference if "--" in reference else f"{repo_id}--{reference}"
                          for auto, reference in auto_map.items()}
    atomic.write_text(config_file, json.dumps(values, indent=2, sort_keys=True) + "\n")


def _count_parameters(folder: Path) -> int:
    """The number of parameters in a folder's safetensors files, read from their headers (no tensor is loaded)."""
    import math

    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    return total


def _read_training_config(source: Path) -> dict[str, Any] | None:
    for name in TRAINING_CONFIG_FILES:
        path = source / name
        if path.is_file():
            if name.endswith(".json"):
                return _read_json(path, "training configuration")
            import yaml

            return yaml.safe_load(path.read_text(encoding="utf-8"))
    return None


# ------------------------------------------------------------------------------------------------ dataset


def stage_dataset(
    source: str | os.PathLike,
    repo_id: str,
    staging_dir: str | os.PathLike | None = None,
    *,
    pretty_name: str | None = None,
    license: str | None = None,
) -> StagedFolder:
    """Assemble a dataset repository from TripletData in any form `dataset_builders.sources` resolves.

    A folder in the Hub layout (``data/*.parquet``) has its shards copied (hard-linked when possible); the released
    layout (a Hub id, a local copy, WebDataset shards) is converted into the staging folder first
    (`convert_official_shards`, one parquet shard per tar, bad samples skipped and counted). The card is rewritten for
    ``repo_id`` with `dataset_builders.hub_layout.write_dataset_card`: YAML with configs, splits and features (so
    ``load_dataset(repo_id)`` works), the sample grid, and a usage snippet. The name, license, tags and the
    "How it was made" section of a card already in ``source`` are kept.
    """
    from dataset_builders import schema
    from dataset_builders.hub_layout import (
        DATA_DIR,
        NotTripletDataError,
        list_shards,
        read_features,
        validate_columns,
        write_dataset_card,
    )
    from dataset_builders.sources import HUB_LAYOUT, WORLD, resolve_dataset
    from dataset_builders.released_shards import convert_official_shards

    try:
        resolved = resolve_dataset(str(source))
    except InputError as error:
        raise PushError(f"Cannot push {source}: {error}") from None
    if resolved.kind == WORLD:
        train = f"{resolved.path}/train" if resolved.path is not None else "<world>/train"
        raise PushError(f"Cannot push {source}: it is a generated world, not one dataset; push its training data, "
                        f"{train}.")
    if resolved.kind != HUB_LAYOUT:
        existing = {}
        out = prepare_staging_dir(staging_dir, "dataset")
        try:
            report = convert_official_shards(str(source), out, progress=False, repo_id=repo_id,
                                             pretty_name=pretty_name or "TripletData",
                                             license=license or cards.DEFAULT_LICENSE)
        except (InputError, FileNotFoundError) as error:
            raise PushError(f"{source} is not TripletData: {error}") from None
        shutil.rmtree(out / ".conversion", ignore_errors=True)
        return StagedFolder(out, repo_id, "dataset", [report.summary()])

    path = resolved.path
    shards = list_shards(path)
    if not shards:
        raise PushError(
            f"{path} holds no parquet shards named like {DATA_DIR}/train-00000-of-00001.parquet: it is not TripletData "
            f"in the Hub layout. Write one with `tripletclip data world`, `tripletclip data convert-webdataset` or "
            f"`dataset_builders.hub_layout.write_tripletdata`."
        )
    try:
        features = read_features(next(iter(shards.values()))[0])
        for split, paths in shards.items():
            validate_columns(read_features(paths[0]), schema.REQUIRED_COLUMNS, source=f"{path} (split {split!r})")
    except NotTripletDataError as error:
        raise PushError(f"{path} is not TripletData: {error}") from None

    existing = _existing_card_data(path / "README.md", "dataset")
    out = prepare_staging_dir(staging_dir, "dataset")
    for paths in shards.values():
        for shard in paths:
            _link_or_copy(shard, out / DATA_DIR / shard.name)
    write_dataset_card(
        out,
        features=features,
        pretty_name=pretty_name or existing.get("pretty_name") or "TripletData",
        license=license or existing.get("license") or cards.DEFAULT_LICENSE,
        tags=existing.get("tags") or ("tripletclip", "compositionality", "hard-negatives"),
        repo_id=repo_id,
        details=_card_section(path / "README.md", "How it was made"),
    )
    return StagedFolder(out, repo_id, "dataset")


# ------------------------------------------------------------------------------------------------ space


def stage_space(
    source: str | os.PathLike,
    repo_id: str,
    staging_dir: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    baseline: str | None = None,
    title: str | None = None,
    license: str | None = None,
) -> StagedFolder:
    """Assemble a Space repository from the app folder ``source`` (``spaces/``).

    Copies the app, its requirements and examples, and the two self-contained modules of the package it uses (the
    rule-based generator of hard negatives and the image decoder, :data:`SPACE_MODULES`: the Space needs only
    transformers and gradio; a checkpoint in either form loads there); writes ``models.json`` and the card.
    ``model`` (TripletCLIP) and
    ``baseline`` (a CLIP to compare with) are Hub ids, listed in the card so the model pages link to the Space, or
    local checkpoint folders, which are bundled under ``models/`` (small models only: they are uploaded with the app).
    """
    import importlib

    source = Path(source)
    if not (source / "app.py").is_file():
        raise PushError(f"{source} has no app.py: give the Space folder of the repository (spaces/).")
    limits = _space_limits(source / "app.py")
    configured = [(label, value) for label, value in (("TripletCLIP", model), ("CLIP baseline", baseline)) if value]
    for label, value in configured:
        if is_local(value) and not (Path(value) / "config.json").is_file():
            raise PushError(f"The {label} model {value!r} is neither a checkpoint folder (no config.json there) nor a "
                            f"Hub id like 'namespace/name'.")
        if is_local(value) and not any(Path(value).glob("*.safetensors")):
            raise PushError(f"The {label} checkpoint {value} has no safetensors weights to bundle into the Space.")

    out = prepare_staging_dir(staging_dir, "space")
    shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SPACE_IGNORE))
    for name, module in SPACE_MODULES.items():
        shutil.copy2(importlib.import_module(module).__file__, out / name)

    notes, entries, hub_models = [], [], []
    for label, value in configured:
        if is_local(value):
            target = f"models/{_slug(label)}"
            _copy_checkpoint(Path(value), out / target)
            entries.append({"label": label, "model": target})
        else:
            entries.append({"label": label, "model": value})
            hub_models.append(value)
    if entries:
        atomic.write_json(out / SPACE_MODELS_FILE, entries)
    else:
        notes.append("no model configured: pass --model (and --baseline), or set TRIPLETCLIP_MODEL / BASELINE_MODEL "
                     "in the Space's variables")
    card = cards.render_space_card(
        title=title or "TripletCLIP: compositional probes",
        models=hub_models,
        license=license or cards.DEFAULT_LICENSE,
        model_labels={e["label"]: e["model"] for e in entries},
        limits=limits,
    )
    card.save(out / "README.md")
    return StagedFolder(out, repo_id, "space", notes)


def _space_limits(app_file: Path) -> dict[str, Any]:
    """The app's input bounds (its module-level ``LIMITS``), read without running the app."""
    import ast

    tree = ast.parse(app_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "LIMITS" for t in targets):
                return dict(ast.literal_eval(node.value))
    raise PushError(f"{app_file} defines no LIMITS dict (the input bounds shown in the Space card).")


def _copy_checkpoint(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for pattern in MODEL_FILES:
        for path in source.glob(pattern):
            if path.is_file():
                _link_or_copy(path, target / path.name)


# ------------------------------------------------------------------------------------------------ upload


def upload(
    staged: StagedFolder,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    api=None,
) -> str:
    """Create the repository (if needed) and upload the staged folder as one commit; returns the repository URL."""
    from huggingface_hub import HfApi

    if not staged_files_complete(staged.path):
        raise PushError(f"{staged.path} is not a complete staging folder (no {STAGED_RECORD}, or files changed since "
                        f"it was assembled); stage it again with the same `tripletclip push` command.")
    token = resolve_token(token)
    api = api if api is not None else HfApi()
    repo_url = api.create_repo(
        staged.repo_id,
        token=token,
        private=private,
        repo_type=staged.repo_type,
        exist_ok=True,
        **({"space_sdk": "gradio"} if staged.repo_type == "space" else {}),
    )
    api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=staged.path,
        repo_type=staged.repo_type,
        token=token,
        commit_message=commit_message or f"Upload {staged.repo_type} with tripletclip",
        ignore_patterns=[STAGING_MARKER, STAGED_RECORD, LOCK_FILE],
    )
    return str(repo_url)


STAGERS = {"model": stage_model, "dataset": stage_dataset, "space": stage_space}


def publish(
    repo_type: str,
    source: str | os.PathLike,
    repo_id: str,
    *,
    staging_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    api=None,
    **options: Any,
) -> tuple[StagedFolder, str | None]:
    """Stage ``source`` as a ``repo_type`` repository and, unless ``dry_run``, upload it to ``repo_id``.

    The repository id, the network and the token are checked first; nothing is uploaded if staging fails.
    ``options`` go to the stager (`stage_model`, `stage_dataset`, `stage_space`). Returns the staged folder and the
    repository URL (None for a dry run). A temporary staging folder is deleted after a successful upload.
    """
    if repo_type not in STAGERS:
        raise PushError(f"Unknown repository type {repo_type!r}; choose one of {', '.join(REPO_TYPES)}.")
    check_repo_id(repo_id, repo_type)
    check_staging_dir(staging_dir)
    if not dry_run:
        token = resolve_token(token)
    lock = None
    if staging_dir is not None:  # one live push per staging folder (the lock file is never staged nor uploaded)
        Path(staging_dir).mkdir(parents=True, exist_ok=True)
        lock = hold_folder(staging_dir, f"tripletclip push {repo_type}")
    try:
        return _stage_and_upload(repo_type, source, repo_id, staging_dir, dry_run, private, token, commit_message,
                                 api, options)
    finally:
        if lock is not None:
            lock.release()


def _stage_and_upload(repo_type, source, repo_id, staging_dir, dry_run, private, token, commit_message, api,
                      options) -> tuple[StagedFolder, str | None]:
    try:
        staged = STAGERS[repo_type](source, repo_id, staging_dir, **options)
        record_staged_files(staged.path, repo_type, repo_id)
    except OSError as error:
        if not atomic.is_disk_full(error) or isinstance(error, atomic.DiskFullError):
            raise
        where = Path(error.filename) if error.filename else Path(staging_dir or "the staging folder")
        raise atomic.DiskFullError(where, error, advice=(
            f"The staging folder is incomplete (it has no {STAGED_RECORD}) and nothing was uploaded. Free space on "
            f"that disk and rerun the same command: the folder is assembled again.")) from error
    if dry_run:
        return staged, None
    url = upload(staged, token=token, private=private, commit_message=commit_message, api=api)
    if staging_dir is None:
        shutil.rmtree(staged.path, ignore_errors=True)
    return staged, url


def _staged_digests(folder: Path) -> dict[str, str]:
    import hashlib

    digests = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in (STAGING_MARKER, STAGED_RECORD, LOCK_FILE):
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def record_staged_files(folder: str | os.PathLike, repo_type: str, repo_id: str) -> Path:
    """Mark a staging folder complete: write :data:`STAGED_RECORD` (each file's SHA-256), atomically, last."""
    folder = Path(folder)
    return atomic.write_json(folder / STAGED_RECORD, {"repo_type": repo_type, "repo_id": repo_id,
                                                      "files": _staged_digests(folder)}, indent=1)


def staged_files_complete(folder: str | os.PathLike) -> bool:
    """Whether a staging folder is complete: its record exists and every file is as recorded."""
    folder = Path(folder)
    try:
        record = json.loads((folder / STAGED_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("files") == _staged_digests(folder)


# ------------------------------------------------------------------------------------------------ helpers


def _existing_card_data(path: Path, repo_type: str) -> dict[str, Any]:
    if not path.is_file():
        return {}
    from huggingface_hub import DatasetCard, ModelCard

    try:
        card = (ModelCard if repo_type == "model" else DatasetCard).load(path)
    except Exception as error:  # a broken card is replaced, not fatal
        logger.warning("Ignoring the unreadable card %s (%s); a new one is written.", path, error)
        return {}
    data = card.data.to_dict()
    if isinstance(data.get("datasets"), str):
        data["datasets"] = [data["datasets"]]
    return data


def _card_section(path: Path, heading: str) -> str | None:
    if not path.is_file():
        return None
    from huggingface_hub import RepoCard

    match = re.search(rf"^## {re.escape(heading)}\s*\n(.*?)(?=^## |\Z)", RepoCard.load(path).text, re.S | re.M)
    return match.group(1).strip() or None if match else None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PushError(f"The {what} {path} is not valid JSON ({error}); regenerate it or fix it.") from None


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


__all__ = [
    "PushError",
    "StagedFolder",
    "check_repo_id",
    "resolve_token",
    "stage_model",
    "stage_dataset",
    "stage_space",
    "upload",
    "publish",
]
