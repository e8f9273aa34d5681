"""Winoground text, image and group scores from the four caption-image scores of each item."""

import evaluate
import numpy as np

from modeling_tripletclip.evaluation.metrics import winoground_metrics
from modeling_tripletclip.evaluation.metric_modules import metric_info

_DESCRIPTION = """
Winoground scores. Each item has two images and two captions; with s(c, i) the score of caption c and image i:
text = s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1); image = s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0);
group = text and image. Comparisons are strict: a tie is wrong.
"""

_KWARGS_DESCRIPTION = """
Args:
    c0_i0, c0_i1, c1_i0, c1_i1 (`list` of `float`): s(caption_0, image_0), s(caption_0, image_1), ... per item.
    tags (`list` of `str`, optional): one tag per item; adds "<tag>/text", "<tag>/image", "<tag>/group".
Returns:
    text, image, group (`float`): fractions of items correct, in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/winoground")
    >>> metric.compute(c0_i0=[0.9], c0_i1=[0.1], c1_i0=[0.2], c1_i1=[0.8])
    {'text': 1.0, 'image': 1.0, 'group': 1.0}
"""

_CITATION = """
@inproceedings{thrush2022winoground,
  title={Winoground: Probing Vision and Language Models for Visio-Linguistic Compositionality},
  author={Thrush, Tristan and Jiang, Ryan and Bartolo, Max and Singh, Amanpreet and Williams, Adina
          and Kiela, Douwe and Ross, Candace},
  booktitle={CVPR},
  year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Winoground(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION,
                           **{name: "float64" for name in ("c0_i0", "c0_i1", "c1_i0", "c1_i1")})

    def _compute(self, c0_i0, c0_i1, c1_i0, c1_i1, tags=None):
        scores = np.stack([np.stack([c0_i0, c0_i1], axis=1), np.stack([c1_i0, c1_i1], axis=1)], axis=1)
        return winoground_metrics(scores, tags=tags)
