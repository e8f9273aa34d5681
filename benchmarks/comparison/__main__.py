"""``python -m benchmarks.comparison``: the paper's comparison in miniature (see `benchmarks.comparison.cli`)."""

import sys

from .cli import main

sys.exit(main())
