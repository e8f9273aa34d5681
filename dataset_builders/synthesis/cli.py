"""``tripletclip synthesize``: hard negatives for your own captions (and images), written as TripletData.

    tripletclip synthesize --input PATH --caption-column COL [--image-column COL] (--llm MODEL | --rules)
                           [--t2i MODEL] --out DIR [--seed S] [...]

Under ``accelerate launch`` the work is split across the processes; a rerun of the same command resumes.
The module also runs on its own: ``python -m dataset_builders.synthesis.cli synthesize ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .llm import DEFAULT_LLM
from .t2i import DEFAULT_T2I

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``synthesize`` subcommand."""
    parser = subparsers.add_parser(
        "synthesize",
        help="make negative captions and negative images for image-caption data (TripletData out)",
        description=(
            "Turn captions (and images) into TripletData: an LLM (or rules) writes a hard-negative caption per "
            "caption, a text-to-image model renders it, optional CLIP and VQA scores rate each triplet. Launch with "
            "`accelerate launch -m dataset_builders.synthesis.cli synthesize ...` to split the work across GPUs; "
            "rerun the same command to resume after an interruption."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", required=True,
                    help="a dataset folder, a JSON-lines/JSON/CSV/TSV/parquet file, or a Hub dataset id")
    io.add_argument("--caption-column", required=True, help="the column with the captions")
    io.add_argument("--image-column", default=None,
                    help="the column with the images (leave out to render positive images from the captions)")
    io.add_argument("--split", default="train", help="the input split to read")
    io.add_argument("--max-rows", type=int, default=None, help="use only the first N rows")
    io.add_argument("--out", required=True, help="output folder (TripletData in the Hub layout)")
    io.add_argument("--rows-per-shard", type=int, default=1000, help="rows per parquet shard (the unit of resume)")
    io.add_argument("--seed", type=int, default=0, help="seed of the run (every row's seeds derive from it)")

    captions = parser.add_argument_group("negative captions")
    which = captions.add_mutually_exclusive_group(required=True)
    which.add_argument("--llm", metavar="MODEL", help=f"causal LM, Hub id or folder (the paper: {DEFAULT_LLM})")
    which.add_argument("--rules", action="store_true", help="the rule-based generator of SugarCrepe's seven kinds")
    captions.add_argument("--prompt-file", type=Path, default=None,
                          help="a text file with your own prompt template ('{}' marks the caption); default: the "
                               "paper's prompt")
    captions.add_argument("--llm-batch-size", type=int, default=16)
    captions.add_argument("--max-new-tokens", type=int, default=96)
    captions.add_argument("--do-sample", action="store_true", help="sample the first attempt (default: greedy)")
    captions.add_argument("--temperature", type=float, default=0.7)
    captions.add_argument("--top-p", type=float, default=0.9)
    captions.add_argument("--max-retries", type=int, default=2,
                          help="extra (sampled) attempts for an answer that fails validation before it is rejected")
    captions.add_argument("--min-length-ratio", type=float, default=0.5,
                          help="reject answers with fewer words than this times the caption's")
    captions.add_argument("--max-length-ratio", type=float, default=2.0,
                          help="reject answers with more words than this times the caption's (plus two)")

    images = parser.add_argument_group("images")
    images.add_argument("--t2i", metavar="MODEL", default=None,
                        help=f"diffusers text-to-image checkpoint (the paper: {DEFAULT_T2I})")
    images.add_argument("--num-inference-steps", type=int, default=1, help="SDXL-turbo: 1 to 4")
    images.add_argument("--guidance-scale", type=float, default=0.0, help="SDXL-turbo: 0.0")
    images.add_argument("--image-size", type=int, default=512, help="height and width in pixels (SDXL-turbo: 512)")
    images.add_argument("--t2i-batch-size", type=int, default=8)

    scores = parser.add_argument_group("filtering and quality check")
    scores.add_argument("--clip-model", default=None, help="CLIP-like model for the triplet score (clip_score)")
    scores.add_argument("--keep-top-k", type=int, default=None, help="write the K best triplets to OUT/filtered")
    scores.add_argument("--min-clip-score", type=float, default=None,
                        help="write triplets scoring at least this to OUT/filtered")
    scores.add_argument("--vqa-model", default=None,
                        help="visual-question-answering model for the quality check (vqa_score), e.g. "
                             "dandelin/vilt-b32-finetuned-vqa")
    scores.add_argument("--question-llm", default=None, help="LLM that writes the yes/no questions (default: --llm)")
    scores.add_argument("--num-questions", type=int, default=5)
    scores.add_argument("--trust-remote-code", action="store_true", help="for a CLIP model with its own code")

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                         help="model dtype (float16 needs a GPU); default: each checkpoint's own")
    runtime.add_argument("--device", default=None, help="default: this process's accelerator, else CPU")
    runtime.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=synthesize_command)


def config_from_args(args: argparse.Namespace):
    """The `SynthesisConfig` for parsed command-line arguments."""
    from .prompts import NEGATIVE_CAPTION_PROMPT
    from .runner import SynthesisConfig, SynthesisError

    prompt = NEGATIVE_CAPTION_PROMPT
    if args.prompt_file is not None:
        try:
            prompt = args.prompt_file.read_text().strip()
        except OSError as error:
            raise SynthesisError(f"Cannot read --prompt-file {args.prompt_file}: {error}") from error
    return SynthesisConfig(
        input=args.input, caption_column=args.caption_column, image_column=args.image_column, split=args.split,
        max_rows=args.max_rows, out=args.out, rows_per_shard=args.rows_per_shard, seed=args.seed, llm=args.llm,
        rules=args.rules, prompt=prompt, llm_batch_size=args.llm_batch_size, max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample, temperature=args.temperature, top_p=args.top_p, max_retries=args.max_retries,
        min_length_ratio=args.min_length_ratio, max_length_ratio=args.max_length_ratio,
        t2i=args.t2i, num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
        image_size=args.image_size, t2i_batch_size=args.t2i_batch_size, clip_model=args.clip_model,
        keep_top_k=args.keep_top_k, min_clip_score=args.min_clip_score, vqa_model=args.vqa_model,
        question_llm=args.question_llm, num_questions=args.num_questions, trust_remote_code=args.trust_remote_code,
        dtype=args.dtype, device=args.device, progress=not args.no_progress,
    )


def synthesize_command(args: argparse.Namespace) -> int:
    """Run ``tripletclip synthesize``: 0 when the folder is complete, 1 when rows failed, 2 on bad input."""
    from .runner import SynthesisError, run_synthesis

    try:
        report = run_synthesis(config_from_args(args))
    except SynthesisError as error:
        print(f"tripletclip synthesize: error: {error}", file=sys.stderr)
        return 2
    summary = {
        "out": str(report.out), "rows": report.rows, "written": report.written, "rejected": report.rejected,
        "failed": report.failed, "rows_per_second": {k: round(v, 3) for k, v in report.throughput.items()},
    }
    if report.vqa:
        summary["vqa"] = report.vqa
    if report.filtered:
        summary["filtered"] = str(report.filtered)
    from accelerate import PartialState

    if PartialState().is_main_process:
        logger.info("%s", json.dumps(summary, indent=2))
    if not report.complete:
        print(f"tripletclip synthesize: {report.failed} rows failed; rerun the same command to retry them.",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m dataset_builders.synthesis.cli synthesize ...`` (and ``accelerate launch -m``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m dataset_builders.synthesis.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
