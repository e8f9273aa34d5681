"""SugarCrepe accuracy: an item is correct when its image scores its caption strictly above the negative caption."""

import evaluate

from modeling_tripletclip.evaluation.metrics import sugarcrepe_accuracy
from modeling_tripletclip.evaluation.metric_modules import metric_info

_DESCRIPTION = """
SugarCrepe accuracy of one subset. Each item is an image with a caption and a negative caption; it counts as correct
only if score(image, caption) > score(image, negative_caption). A tie counts as wrong.
"""

_KWARGS_DESCRIPTION = """
Args:
    positive_scores (`list` of `float`): score of each image with its caption.
    negative_scores (`list` of `float`): score of the same image with its negative caption.
Returns:
    accuracy (`float`): fraction of items scored correctly, in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/sugarcrepe_accuracy")
    >>> metric.compute(positive_scores=[0.3, 0.2, 0.5], negative_scores=[0.1, 0.2, 0.6])
    {'accuracy': 0.3333333333333333}
"""

_CITATION = """
@inproceedings{hsieh2023sugarcrepe,
  title={SugarCrepe: Fixing Hackable Benchmarks for Vision-Language Compositionality},
  author={Hsieh, Cheng-Yu and Zhang, Jieyu and Ma, Zixian and Kembhavi, Aniruddha and Krishna, Ranjay},
  booktitle={NeurIPS Datasets and Benchmarks},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SugarcrepeAccuracy(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, positive_scores="float64", negative_scores="float64")

    def _compute(self, positive_scores, negative_scores):
        return {"accuracy": sugarcrepe_accuracy(positive_scores, negative_scores)}
