"""``python -m benchmarks.perf``: the performance suite (see `benchmarks.perf.run`)."""

import sys

from .run import main

sys.exit(main())
