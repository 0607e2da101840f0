"""The paper's rule for α, and which α leaves each face of a dual model untrained.

The paper's remarks (Samuel & Charpentier, arXiv 2512.14549, §5): mixing both objectives
beats either alone at every repetition level; for up to 16 repetitions the best α is
about 63/64 (almost all AR, a little MD); beyond that AR starts to overfit, and the best
α keeps the AR objective at about 16 effective repetitions: α · R ≈ 16.

A leaf of `keras_dualobj.study`: it imports nothing from the study, so that the tables,
the analysis and the recommendation can all read it.
"""

from keras_dualobj.utils.validation import check_float

# AR share the paper found best while AR does not yet overfit (R <= 16).
LOW_REPETITION_AR_FRACTION = 63 / 64
# Repetitions the AR objective tolerates before overfitting (α · R ≈ 16 beyond).
AR_REPETITION_BUDGET = 16.0

# α is the share of AR rows: α = 0 trains no AR, α = 1 no MD. Each face is fitted on the
# models that train it: the MD face never at α = 1 (its MD half is untrained: an ELBO of
# ~2x the others' would dominate the fit), the AR face (AR loss; AR and prefix choice)
# never at α = 0. Keys: a `CellResult` metric or a multiple-choice mode.
UNTRAINED_END = {"final_ar_loss": 0.0, "final_md_pll": 1.0, "final_md_elbo": 1.0, "ar": 0.0,
                 "prefix": 0.0, "md": 1.0, "md_elbo": 1.0}


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
