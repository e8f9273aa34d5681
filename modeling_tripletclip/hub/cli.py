"""``tripletclip push model|dataset|space`` (publish on the Hugging Face Hub) and ``tripletclip convert-clip`` /
``convert-official`` (write TripletCLIP checkpoints from others).

Each push assembles the exact folder the repository will hold in ``--output_dir`` (default: a temporary folder),
prints it, and uploads it in one commit; with ``--dry_run`` it stops after printing, leaving the folder to inspect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dataset_builders.utils.options import Command

from ..loading import checkpoint_format_option
from ..losses import LOSS_TYPES

EXAMPLES = {
    "model": "tripletclip push model --model_name_or_path outputs/tripletclip-world --repo_id your-name/tripletclip-world "
             "--dry_run",
    "dataset": "tripletclip push dataset --dataset world/train --repo_id your-name/tripletdata-world",
    "space": "tripletclip push space --space_dir spaces --repo_id your-name/tripletclip-demo --model "
             "your-name/tripletclip-world --baseline openai/clip-vit-base-patch32",
}


@dataclass
class _PushOptions:
    repo_id: str = field(metadata={"help": "namespace/name on the Hub"})
    output_dir: str | None = field(default=None, metadata={
        "help": "where to assemble the folder (default: a temporary folder)"})
    dry_run: bool = field(default=False, metadata={"help": "assemble and list the files, upload nothing"})
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    token: str | None = field(default=None, metadata={"help": "Hub token with write access (default: HF_TOKEN or "
                                                              "`hf auth login`)"})
    commit_message: str | None = field(default=None, metadata={"help": "the commit message"})
    license: str | None = field(default=None, metadata={"help": "license id for the card (default: apache-2.0)"})


@dataclass
class PushModelOptions(_PushOptions):
    """Options of ``tripletclip push model``."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "the trained checkpoint folder"})
    eval_results: str | None = field(default=None, metadata={
        "help": "evaluation report JSON for the card (default: <model>/eval_results.json)"})
    eval_model: str | None = field(default=None, metadata={
        "help": "the report's key for this model, when the report covers several models"})
    processor: str | None = field(default=None, metadata={"help": "processor to publish (default: the model's)"})
    datasets: list[str] = field(default_factory=list, metadata={
        "help": "training dataset Hub id for the card (repeatable)"})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the checkpoint it was fine-tuned from"})
    checkpoint_format: str = checkpoint_format_option()


@dataclass
class PushDatasetOptions(_PushOptions):
    """Options of ``tripletclip push dataset``."""

    dataset: str | None = field(default=None, metadata={
        "help": "TripletData: a Hub-layout folder, or the released layout (Hub id, local copy, shards)",
        "nargs": "+"})
    pretty_name: str | None = field(default=None, metadata={
        "help": "the dataset's display name (default: kept from its card, else TripletData)"})


@dataclass
class PushSpaceOptions(_PushOptions):
    """Options of ``tripletclip push space``."""

    space_dir: str = field(default="spaces", metadata={"help": "the Space folder of the repository"})
    model: str | None = field(default=None, metadata={
        "help": "TripletCLIP model: a Hub id, or a local checkpoint folder to bundle"})
    baseline: str | None = field(default=None, metadata={
        "help": "baseline CLIP shown beside it: a Hub id (e.g. openai/clip-vit-base-patch32) or a local folder to "
                "bundle"})
    title: str | None = field(default=None, metadata={"help": "the Space's title"})


SOURCES = {"model": "model_name_or_path", "dataset": "dataset", "space": "space_dir"}
STAGE_OPTIONS = {
    "model": ("license", "eval_results", "eval_model", "processor", "datasets", "base_model", "checkpoint_format"),
    "dataset": ("license", "pretty_name"),
    "space": ("license", "model", "baseline", "title"),
}


def _push(repo_type: str):
    def run(options) -> int:
        from .push import PushError, publish

        source = getattr(options, SOURCES[repo_type])
        if not source:
            raise PushError(f"Say what to push: --{SOURCES[repo_type]} (e.g. {EXAMPLES[repo_type]}).")
        staged_options = {name: getattr(options, name) for name in STAGE_OPTIONS[repo_type]}
        if repo_type == "model":
            staged_options["datasets"] = staged_options["datasets"] or None
        staged, url = publish(repo_type, source, options.repo_id, staging_dir=options.output_dir,
                              dry_run=options.dry_run, private=options.private, token=options.token,
                              commit_message=options.commit_message, **staged_options)
        print(staged.summary())
        if url is None:
            print(f"\nDry run: nothing was uploaded. The folder above is exactly what would be pushed to "
                  f"{options.repo_id}.")
        else:
            print(f"\nPushed to {url}")
        return 0

    return run


@dataclass
class ConvertClipOptions:
    """Options of ``tripletclip convert-clip``."""

    model_name_or_path: str = field(metadata={
        "help": "CLIP checkpoint: a Hub id such as openai/clip-vit-base-patch32, or a folder"})
    output_dir: str = field(metadata={"help": "output folder"})
    loss_type: str = field(default="tripletclip", metadata={"help": "the objective recorded in the config",
                                                             "choices": LOSS_TYPES})
    checkpoint_format: str = checkpoint_format_option()


def _convert_clip(options: ConvertClipOptions) -> int:
    from .convert import convert_clip

    out = convert_clip(options.model_name_or_path, options.output_dir, loss_type=options.loss_type,
                       checkpoint_format=options.checkpoint_format)
    print(f"Saved a TripletCLIP checkpoint (loss_type={options.loss_type}) to {out}")
    return 0


@dataclass
class ConvertOfficialOptions:
    """Options of ``tripletclip convert-official``."""

    model_name_or_path: str = field(metadata={"help": "Hub id or folder of the official checkpoint"})
    output_dir: str = field(metadata={"help": "output folder (new or empty)"})
    processor: str = field(default="openai/clip-vit-base-patch32", metadata={
        "help": "processor to save with it (Hub id or folder)"})
    loss_type: str | None = field(default=None, metadata={
        "help": "objective recorded in the config (default: from the repository name)", "choices": LOSS_TYPES})
    logit_scale: float = field(default=100.0, metadata={"help": "fixed logit scale (the official evaluation's)"})
    checkpoint_format: str = checkpoint_format_option()


def _convert_official(options: ConvertOfficialOptions) -> int:
    from .convert import convert_official

    out, text, vision = convert_official(options.model_name_or_path, options.output_dir, processor=options.processor,
                                         loss_type=options.loss_type, logit_scale=options.logit_scale,
                                         checkpoint_format=options.checkpoint_format)
    print(f"Saved a TripletCLIP checkpoint to {out} (text: {text.naming} naming, vision: {vision.naming} naming, "
          f"logit scale {options.logit_scale:g}). Load it with AutoModel.from_pretrained({str(out)!r}).")
    return 0


_HELPS = {
    "model": ("publish a checkpoint: weights (a plain CLIP checkpoint by default), processor, card", PushModelOptions),
    "dataset": ("publish TripletData with its card", PushDatasetOptions),
    "space": ("publish the Gradio demo", PushSpaceOptions),
}

COMMANDS = [
    *(Command(f"push {kind}", options, _push(kind), help=help_text,
              description=f"{help_text}. Assemble the exact folder the Hub repository will hold, then upload it "
                          f"(create_repo + upload_folder). The token comes from --token, HF_TOKEN or `hf auth login`. "
                          f"Example: {EXAMPLES[kind]}")
      for kind, (help_text, options) in _HELPS.items()),
    Command("convert-clip", ConvertClipOptions, _convert_clip,
            help="save a CLIP checkpoint as a TripletCLIP checkpoint (same weights)",
            description="Save any CLIP checkpoint (Hub id or folder) as a TripletCLIP checkpoint with identical "
                        "weights."),
    Command("convert-official", ConvertOfficialOptions, _convert_official,
            help="turn an official TripletCLIP release (text-encoder/ + vision-encoder/) into one checkpoint",
            description="Convert an official TripletCLIP checkpoint (e.g. TripletCLIP/CC3M_TripletCLIP_ViTB12, or a "
                        "folder with text-encoder/ and vision-encoder/) into one TripletCLIP checkpoint that "
                        "AutoModel.from_pretrained loads. Weights are matched by structure and every tensor must be "
                        "used exactly once; the logit scale is fixed at 100 as in the official evaluation."),
]
