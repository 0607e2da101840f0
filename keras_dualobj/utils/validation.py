"""Argument checks for public constructors: each error names the value and what is accepted."""

import math
import numbers


def check_int(name, value, minimum=None):
    """Returns `value` if it is an integer `>= minimum`, else raises.

    Example:
    >>> check_int("num_layers", 2, minimum=1)
    2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; received {name}={value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}.")
    return int(value)


def check_float(name, value, minimum=None, maximum=None, include_maximum=True):
    """Returns `value` as a float if it is finite and within bounds, else raises.

    Example:
    >>> check_float("ar_fraction", 0.5, minimum=0.0, maximum=1.0)
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number; received {name}={value!r}.")
    value = float(value)
    upper = "]" if include_maximum else ")"
    accepted = (
        f"a finite number in [{minimum}, {maximum}{upper}"
        if maximum is not None
        else f"a finite number >= {minimum}"
    )
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be {accepted}; received {name}={value!r}.")
    too_small = minimum is not None and value < minimum
    too_large = maximum is not None and (
        value > maximum or (not include_maximum and value == maximum)
    )
    if too_small or too_large:
        raise ValueError(f"`{name}` must be {accepted}; received {name}={value!r}.")
    return value


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises.

    Example:
    >>> check_choice("mode", "causal", ("causal", "bidirectional"))
    'causal'
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; received {name}={value!r}.")
    return value
