"""Image and text retrieval recall@k with several captions per image (CLIP_benchmark's semantics)."""

import evaluate
import numpy as np

from modeling_tripletclip.evaluation.metrics import retrieval_recall
from modeling_tripletclip.evaluation.metric_modules import metric_info

_DESCRIPTION = """
Zero-shot image-text retrieval recall@k. Each example is one caption: its scores against every image of the set and
the index of the image it describes (an image may have several captions).
image_retrieval_recall@k: fraction of captions whose image is among the caption's top k images.
text_retrieval_recall@k: fraction of images with at least one of their captions among the image's top k captions.
Ties are resolved against the correct candidate.
"""

_KWARGS_DESCRIPTION = """
Args:
    scores (`list` of `list` of `float`): for each caption, its score with each image (same image order for all).
    image_index (`list` of `int`): for each caption, the index of the image it describes.
    ks (`list` of `int`, optional, defaults to [1, 5, 10]): the cut-offs.
Returns:
    image_retrieval_recall@k and text_retrieval_recall@k (`float`) for each k, in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/retrieval_recall")
    >>> metric.compute(scores=[[0.9, 0.1], [0.2, 0.3], [0.6, 0.5]], image_index=[0, 1, 1], ks=[1])
    {'image_retrieval_recall@1': 0.6666666666666666, 'text_retrieval_recall@1': 1.0}
"""

_CITATION = """
@misc{cherti2022clipbenchmark,
  title={CLIP Benchmark},
  author={Cherti, Mehdi and Beaumont, Romain},
  howpublished={https://github.com/LAION-AI/CLIP_benchmark},
  year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, scores="list", image_index="int64")

    def _compute(self, scores, image_index, ks=(1, 5, 10)):
        matrix = np.asarray(scores, dtype=np.float64).T  # (num_images, num_captions)
        return retrieval_recall(matrix, image_index, ks=ks)
