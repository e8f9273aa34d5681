"""``tripletclip synthesize``: hard negatives for your own captions (and images), written as TripletData.

    tripletclip synthesize --dataset DATA --caption_column COL [--image_column COL] (--llm MODEL | --rules)
                           [--t2i MODEL] --output_dir DIR [--seed S] [...]

The options are the fields of `SynthesisConfig` (one flag each; ``--config FILE.yaml`` reads them from YAML). The job
is a datatrove pipeline, one task per shard, on the executor ``--executor`` names (local, slurm, ray); a rerun of the
same command resumes. The module also runs on its own: ``python -m dataset_builders.synthesis.cli synthesize ...``.
"""

from __future__ import annotations

import json
import logging
import sys

from ..utils.options import Command, run_command

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Turn captions (and images) into TripletData: an LLM (or rules) writes a hard-negative caption per caption, a "
    "text-to-image model renders it, optional CLIP and VQA scores rate each triplet. The work runs as a datatrove "
    "pipeline, one task per shard: --workers N on this machine, --executor slurm (a job array) or --executor ray on a "
    "cluster; rerun the same command to resume after an interruption. Exit status: 0 when the folder is complete "
    "(or, on Slurm, the job array submitted), 1 when rows failed (rerun to retry them), 2 "
    "on bad input."
)


def synthesize(config) -> int:
    """Run ``tripletclip synthesize``: 0 when the folder is complete, 1 when rows failed (bad input raises)."""
    from .runner import run_synthesis

    report = run_synthesis(config)
    summary = {
        "output_dir": str(report.out), "rows": report.rows, "written": report.written, "rejected": report.rejected,
        "failed": report.failed, "rows_per_second": {k: round(v, 3) for k, v in report.throughput.items()},
    }
    if report.vqa:
        summary["vqa"] = report.vqa
    if report.filtered:
        summary["filtered"] = str(report.filtered)
    logger.info("%s", json.dumps(summary, indent=2))
    if config.executor == "slurm" and report.shards_done < report.shards:
        print(f"tripletclip synthesize: submitted {report.shards - report.shards_done} shards to Slurm (logs in "
              f"{report.out}/synthesis/pipeline); the card and manifest follow when the array is done. Rerun the "
              f"same command to resubmit what did not finish.", file=sys.stderr)
        return 0
    if not report.complete:
        print(f"tripletclip synthesize: {report.failed} rows failed; rerun the same command to retry them.",
              file=sys.stderr)
        return 1
    return 0


def _config_class():
    from .runner import SynthesisConfig

    return SynthesisConfig


COMMANDS = [
    Command("synthesize", _config_class(), synthesize,
            help="make negative captions and negative images for image-caption data (TripletData out)",
            description=DESCRIPTION),
]


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m dataset_builders.synthesis.cli synthesize ...``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "synthesize":
        print("usage: python -m dataset_builders.synthesis.cli synthesize [options]  (synthesize --help lists them)",
              file=sys.stderr)
        return 2
    return run_command(COMMANDS[0], argv[1:], prog="tripletclip synthesize")


if __name__ == "__main__":
    sys.exit(main())
