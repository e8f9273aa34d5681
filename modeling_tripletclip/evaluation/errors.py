"""The error every evaluation input problem raises."""


class EvaluationInputError(ValueError):
    """Bad evaluation input: a missing file or column, a model that is not CLIP-like, an unknown benchmark.

    The message says what is wrong and how to fix it. Raised before any expensive work starts.
    """
