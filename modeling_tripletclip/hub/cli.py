"""``tripletclip push {model,dataset,space} SOURCE --repo-id ID``: publish on the Hugging Face Hub.

Each command assembles the exact folder the repository will hold, prints it, and uploads it in one commit; with
``--dry-run`` it stops after printing, leaving the folder to inspect (``--staging-dir`` chooses where).
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = {
    "model": "tripletclip push model outputs/tripletclip-world --repo-id your-name/tripletclip-world --dry-run",
    "dataset": "tripletclip push dataset world/train --repo-id your-name/tripletdata-world",
    "space": "tripletclip push space spaces --repo-id your-name/tripletclip-demo --model your-name/tripletclip-world "
             "--baseline openai/clip-vit-base-patch32",
}


def _push_command(args: argparse.Namespace) -> int:
    from .push import PushError, publish

    options = {name: getattr(args, name) for name in args.stage_options}
    try:
        staged, url = publish(
            args.repo_type,
            args.source,
            args.repo_id,
            staging_dir=args.staging_dir,
            dry_run=args.dry_run,
            private=args.private,
            token=args.token,
            commit_message=args.commit_message,
            **options,
        )
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(staged.summary())
    if url is None:
        print(f"\nDry run: nothing was uploaded. The folder above is exactly what would be pushed to {args.repo_id}.")
    else:
        print(f"\nPushed to {url}")
    return 0


def register(subparsers) -> None:
    push_parser = subparsers.add_parser(
        "push",
        help="publish a model, a dataset or the Space on the Hugging Face Hub",
        description="Assemble the exact folder a Hub repository will hold, then upload it (create_repo + "
        "upload_folder). The token comes from --token, HF_TOKEN or `hf auth login`.",
    )
    kinds = push_parser.add_subparsers(dest="repo_type", metavar="{model,dataset,space}", required=True)
    helps = {
        "model": ("a trained checkpoint folder", "publish a checkpoint: weights, remote code, processor, card"),
        "dataset": ("a TripletData folder (README.md + data/*.parquet)", "publish TripletData with its card"),
        "space": ("the Space folder of the repository (spaces/)", "publish the Gradio demo"),
    }
    for kind, (source_help, help_text) in helps.items():
        parser = kinds.add_parser(kind, help=help_text, description=f"{help_text}. Example: {EXAMPLES[kind]}")
        parser.add_argument("source", help=source_help)
        parser.add_argument("--repo-id", "--repo_id", dest="repo_id", required=True, help="namespace/name on the Hub")
        parser.add_argument("--staging-dir", "--staging_dir", dest="staging_dir", default=None,
                            help="where to assemble the folder (default: a temporary folder)")
        parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                            help="assemble and list the files, upload nothing")
        parser.add_argument("--private", action="store_true", help="create the repository as private")
        parser.add_argument("--token", default=None, help="Hub token with write access (default: HF_TOKEN or login)")
        parser.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None)
        parser.add_argument("--license", default=None, help="license id for the card (default: apache-2.0)")
        stage_options = ["license"]
        if kind == "model":
            parser.add_argument("--eval-results", "--eval_results", dest="eval_results", default=None,
                                help="evaluation report JSON for the card (default: SOURCE/eval_results.json)")
            parser.add_argument("--eval-model", "--eval_model", dest="eval_model", default=None,
                                help="the report's key for this model, when the report covers several models")
            parser.add_argument("--processor", default=None, help="processor to publish (default: the one in SOURCE)")
            parser.add_argument("--dataset", dest="datasets", action="append", default=None,
                                help="training dataset Hub id for the card (repeatable)")
            parser.add_argument("--base-model", "--base_model", dest="base_model", default=None,
                                help="Hub id of the checkpoint it was fine-tuned from")
            stage_options += ["eval_results", "eval_model", "processor", "datasets", "base_model"]
        elif kind == "dataset":
            parser.add_argument("--pretty-name", "--pretty_name", dest="pretty_name", default=None,
                                help="the dataset's display name (default: kept from its card, else TripletData)")
            stage_options += ["pretty_name"]
        else:
            parser.add_argument("--model", default=None,
                                help="TripletCLIP model: a Hub id, or a local checkpoint folder to bundle")
            parser.add_argument("--baseline", default=None,
                                help="baseline CLIP shown beside it: a Hub id (e.g. openai/clip-vit-base-patch32) "
                                "or a local folder to bundle")
            parser.add_argument("--title", default=None, help="the Space's title")
            stage_options += ["model", "baseline", "title"]
        parser.set_defaults(func=_push_command, stage_options=stage_options)
