"""Argument types the subcommands share, so that one flag reads the same everywhere."""

import argparse
import fractions
import json
import sys


def parse_fraction(text):
    """`"63/64"`, `"0.5"` or `"1"` -> float: α as `train --ar-fraction` and
    `study --ar-fractions` read it.

    Anything `float()` reads also passes (`nan` is then refused by the range check
    of the flag, which names the accepted range).

    Example:
    >>> parse_fraction("63/64"), parse_fraction("0.25"), parse_fraction("1")
    (0.984375, 0.25, 1.0)
    """
    try:
        return float(fractions.Fraction(text))
    except ZeroDivisionError:
        pass
    except ValueError:
        try:
            return float(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(
        f"α must be a number or a fraction like 63/64; received {text!r}."
    )


def key_value(text):
    """`NAME=VALUE` -> `(NAME, VALUE)`, the value read as JSON when it parses
    (`--backbone-override`).

    Example:
    >>> key_value("num_layers=2"), key_value("activation=gelu")
    (('num_layers', 2), ('activation', 'gelu'))
    """
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, received {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def apply_threads(args, command):
    """Applies `--threads` (when given) before any computation; returns the exit
    code 2 with the error on stderr when it cannot, else None.

    Example:
    >>> apply_threads(argparse.Namespace(threads=None), "train") is None
    True
    """
    if args.threads is None:
        return None
    from keras_dualobj.utils.threads import set_compute_threads

    try:
        set_compute_threads(args.threads)
    except (TypeError, ValueError, RuntimeError) as error:
        print(f"keras-dualobj {command}: error: --threads: {error}", file=sys.stderr)
        return 2
    return None
