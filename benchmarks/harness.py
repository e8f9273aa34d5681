"""What the harnesses (`benchmarks.perf`, `benchmarks.faults`, `benchmarks.comparison`) share: their results JSON
and the README section each one rewrites from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dataset_builders.utils import atomic


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write a harness's results as indented JSON, atomically."""
    return atomic.write_json(Path(path), results, indent=1)


def replace_readme_section(readme: Path, heading: str, section: str) -> None:
    """Replace the ``heading`` section of ``readme`` (``## Title``: up to the next ``##`` heading) with ``section``,
    or append it; the other sections are kept as they are. Written atomically."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\s*$.*?(?=^## (?!#)|\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    atomic.write_text(readme, text.rstrip() + "\n")
