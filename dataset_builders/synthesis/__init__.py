"""Hard-negative synthesis: turn image-caption pairs (or captions alone) into TripletData.

The paper's recipe, step by step, each in its own module:

* :mod:`.prompts` - the paper's prompt for negative captions (verbatim) and the quality-check question prompt;
* :mod:`.llm` - negative captions from any causal LM, in process through transformers or behind a vLLM, SGLang or
  OpenAI-compatible server (cleaned and validated the same way: a bad answer is retried, then rejected with its
  reason);
* :mod:`.rules` - rule-based negative captions of SugarCrepe's seven kinds, for runs without an LLM (and the Space);
* :mod:`.t2i` - negative (and, if needed, positive) images from any diffusers text-to-image pipeline, one seed per row;
* :mod:`.filters` - the CLIP-score triplet filter; :mod:`.quality` - the yes/no-question VQA quality check;
* :mod:`.plan` - the options, the input cut into shards, the seeds, the claim on the output folder;
* :mod:`.pipeline` - the stages as datatrove pipeline steps, one task per shard;
* :mod:`.runner` - the whole job on a datatrove executor (local, Slurm, Ray), written as resumable parquet shards;
* :mod:`.cli` - ``tripletclip synthesize``.

Heavy libraries (torch, transformers, diffusers) are imported inside the functions that need them, so importing this
package (for example for the rule-based generator) stays cheap.
"""

from .rules import NEGATIVE_KINDS, NegativeCaption, applicable_kinds, generate_negative, propose_negatives

__all__ = ["NEGATIVE_KINDS", "NegativeCaption", "applicable_kinds", "generate_negative", "propose_negatives"]
