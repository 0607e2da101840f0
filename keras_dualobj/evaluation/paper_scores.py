"""The paper's summary of a downstream suite: chance-normalised accuracy, averaged.

arXiv 2512.14549 reports each task's accuracy rescaled so that guessing scores 0 and a
perfect model 100, and the average of those scores over its tasks:

    normalised = (accuracy - chance) / (1 - chance) * 100

where `chance` is the accuracy of a uniform guess: the mean over the scored documents
of `1 / number of choices` (a task whose questions have 3, 4 or 5 choices, as ARC,
gets the mean of its documents' chances). Scores below chance are kept negative, never
clipped: a model worse than guessing should read as such.
"""

import math
import numbers


def _check_fraction(name, value, upper_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"`{name}` must be a number in [0, 1]; received {name}={value!r}.")
    if not 0.0 <= value <= 1.0 or (upper_open and value >= 1.0):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"`{name}` must be in {bound}; received {name}={value!r}.")


def chance_accuracy(num_choices):
    """The accuracy of a uniform guess over documents with `num_choices` choices each.

    Example:
    >>> chance_accuracy([4, 4, 2])
    0.3333333333333333
    """
    num_choices = list(num_choices)
    if not num_choices or any(
        isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2
        for n in num_choices
    ):
        raise ValueError(
            "`num_choices` must be a non-empty list of integers >= 2 (choices per "
            f"document); received num_choices={num_choices!r}."
        )
    return sum(1.0 / n for n in num_choices) / len(num_choices)


def normalized_score(accuracy, chance):
    """`(accuracy - chance) / (1 - chance) * 100`: 0 at chance, 100 when always right.

    Example:
    >>> normalized_score(0.625, 0.25)
    50.0
    """
    _check_fraction("accuracy", accuracy)
    _check_fraction("chance", chance, upper_open=True)
    return (accuracy - chance) / (1.0 - chance) * 100.0


def average_normalized_score(accuracies, chances):
    """The paper's aggregate: the mean of the tasks' normalised scores.

    Args:
        accuracies: dict task -> accuracy in [0, 1].
        chances: dict task -> chance accuracy in [0, 1), with the same tasks.

    Example:
    >>> average_normalized_score({"a": 0.625, "b": 0.5}, {"a": 0.25, "b": 0.5})
    25.0
    """
    if not accuracies or set(accuracies) != set(chances):
        raise ValueError(
            "`accuracies` and `chances` must name the same non-empty set of tasks; "
            f"received {sorted(accuracies)} and {sorted(chances)}."
        )
    scores = [normalized_score(accuracies[task], chances[task]) for task in accuracies]
    return sum(scores) / len(scores)
