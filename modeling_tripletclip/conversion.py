"""Converters into TripletCLIP checkpoints.

- `tripletclip convert-clip SOURCE --out DIR`: any CLIP checkpoint (Hub id or folder) as a TripletCLIP checkpoint
  with bit-identical weights and its processor, ready to fine-tune with the triplet loss.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .configuration_tripletclip import LOSS_TYPES


def convert_clip(source: str, out: str | Path, loss_type: str = "tripletclip") -> Path:
    """Save ``source`` (a CLIP checkpoint) as a TripletCLIP checkpoint in ``out``, processor included."""
    from transformers import AutoProcessor

    from .modeling_tripletclip import TripletCLIPModel

    out = Path(out)
    model = TripletCLIPModel.from_clip(source, loss_type=loss_type)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(source).save_pretrained(out)
    return out


def _convert_clip_command(args: argparse.Namespace) -> int:
    out = convert_clip(args.source, args.out, loss_type=args.loss_type)
    print(f"Saved a TripletCLIP checkpoint (loss_type={args.loss_type}) to {out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-clip",
        help="save a CLIP checkpoint as a TripletCLIP checkpoint (same weights)",
        description="Save any CLIP checkpoint (Hub id or folder) as a TripletCLIP checkpoint with identical weights.",
    )
    parser.add_argument("source", help="CLIP checkpoint: a Hub id such as openai/clip-vit-base-patch32, or a folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--loss_type", "--loss-type", default="tripletclip", choices=LOSS_TYPES)
    parser.set_defaults(func=_convert_clip_command)
