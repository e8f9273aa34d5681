"""The fault harness: kills, full disks, dead peers, hostile files and bad configurations as counted trials.

Run ``python -m benchmarks.faults`` (the full table; see benchmarks/README.md for its wall time) or
``python -m benchmarks.faults --quick`` (a few trials per job; the test suite runs it). Modules:

- :mod:`.jobs`: the interrupted jobs, their commands, resume commands and comparisons with an uninterrupted run;
- :mod:`.disk` and ``inject/sitecustomize.py``: where the disk fills up, and the injection into every process;
- :mod:`.peers`: a two-process training run whose rank 1 dies;
- :mod:`.hostile` and :mod:`.readers`: the hostile-file corpus and every reader it goes through;
- :mod:`.configs`: invalid configurations that every command must refuse before any work;
- :mod:`.run`: the harness and its reliability table.
"""
