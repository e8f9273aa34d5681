"""The error every evaluation input problem raises: the package's `InputError`.

A missing file or column, a model that is not CLIP-like, an unknown benchmark: the message says what is wrong and how
to fix it, and it is raised before any expensive work starts.
"""

from dataset_builders.utils.errors import InputError

EvaluationInputError = InputError

__all__ = ["EvaluationInputError"]
