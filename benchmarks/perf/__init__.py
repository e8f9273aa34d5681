"""The performance suite: each figure is a ratio of a candidate to a baseline timed in the same process.

Run ``python -m benchmarks.perf`` (about 20 minutes on 2 CPU cores; ``--quick``: about a minute). Results go to
``benchmarks/results/perf.json`` and ``perf.md`` (each figure beside its goal), ``perf.png``, and a profile file for
any figure that misses its goal. One module per measurement:

- :mod:`.train_step`: a `TripletCLIPModel` step on B triplets vs `transformers.CLIPModel` on 2B pairs, and vs two
  forward passes per tower (the official code's approach);
- :mod:`.data_pipeline`: the collator and the trainer's batch stream (0, 1, 2 workers) vs plain PIL decode + resize,
  on the world's PNGs and on photo-like JPEGs, and how long the trainer waits on data;
- :mod:`.reduced_decoding`: whether reduced decoding changes a trained model's SugarCrepe scores;
- :mod:`.evaluation_speed`: a SugarCrepe-format evaluation vs encoding its unique images and captions;
- :mod:`.memory`: peak memory per triplet, with and without gradient checkpointing.
"""
