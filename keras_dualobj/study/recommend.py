"""Which AR share α to train with, for a given number of data repetitions.

The paper's remarks (Samuel & Charpentier, arXiv 2512.14549, §5): mixing both objectives
beats either alone at every repetition level; for up to 16 repetitions the best α is
about 63/64 (almost all AR, a little MD); beyond that AR starts to overfit, and the best
α keeps the AR objective at about 16 effective repetitions: α · R ≈ 16.
"""

from keras_dualobj.utils.validation import check_float

# AR share the paper found best while AR does not yet overfit (R <= 16).
LOW_REPETITION_AR_FRACTION = 63 / 64
# Repetitions the AR objective tolerates before overfitting (α · R ≈ 16 beyond).
AR_REPETITION_BUDGET = 16.0


def paper_ar_fraction(repetitions):
    """The AR share α the paper's remarks give for `repetitions` passes over the data.

    `min(63/64, 16 / R)`: 63/64 up to 16 repetitions, then `α = 16 / R` so that the AR
    objective sees about 16 effective repetitions.

    Args:
        repetitions: float >= 1, how many times the unique data is repeated.

    Returns:
        float in (0, 1).

    Example:
    >>> paper_ar_fraction(4)
    0.984375
    >>> paper_ar_fraction(64)
    0.25
    """
    repetitions = check_float("repetitions", repetitions, minimum=1.0)
    return min(LOW_REPETITION_AR_FRACTION, AR_REPETITION_BUDGET / repetitions)
