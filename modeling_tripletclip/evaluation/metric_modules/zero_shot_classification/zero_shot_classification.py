"""Zero-shot classification: top-k accuracy and mean per-class recall from class logits."""

import evaluate

from modeling_tripletclip.evaluation.metrics import zero_shot_metrics
from modeling_tripletclip.evaluation.metric_modules import metric_info

_DESCRIPTION = """
Zero-shot classification metrics. Each example is one image: its logits over all classes and its true class.
top{k}: fraction of images whose true class is among the k highest logits (a tie counts against the true class).
mean_per_class_recall: mean over the classes present of the fraction of their images classified correctly (top-1).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): for each image, its logit for every class.
    references (`list` of `int`): for each image, its true class index.
    ks (`list` of `int`, optional, defaults to [1, 5]): the cut-offs of the top-k accuracies.
Returns:
    top1, top5 (`float`) and mean_per_class_recall (`float`), in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/zero_shot_classification")
    >>> metric.compute(predictions=[[2.0, 1.0], [0.5, 0.7]], references=[0, 0], ks=[1])
    {'top1': 0.5, 'mean_per_class_recall': 0.5}
"""

_CITATION = """
@inproceedings{radford2021clip,
  title={Learning Transferable Visual Models From Natural Language Supervision},
  author={Radford, Alec and Kim, Jong Wook and Hallacy, Chris and others},
  booktitle={ICML},
  year={2021}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ZeroShotClassification(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, predictions="list", references="int64")

    def _compute(self, predictions, references, ks=(1, 5)):
        return zero_shot_metrics(predictions, references, ks=ks)
