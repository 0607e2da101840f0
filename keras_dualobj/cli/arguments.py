"""Argument types the subcommands share, so that one flag reads the same everywhere."""

import argparse
import difflib
import fractions
import importlib.util
import json
import os
import re


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


def apply_threads(args):
    """Applies `--threads` (when given) before any computation; raises `ValueError`
    naming the flag when it cannot.

    Example:
    >>> apply_threads(argparse.Namespace(threads=None))
    """
    if args.threads is None:
        return
    from keras_dualobj.utils.threads import set_compute_threads

    try:
        set_compute_threads(args.threads)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"--threads: {error}") from None


def option_flags(parser):
    """`{dest: "--flag"}` for every option of `parser` (its longest spelling).

    Example:
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("-o", "--output-dir")
    >>> option_flags(parser)
    {'output_dir': '--output-dir'}
    """
    return {
        action.dest: max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings and action.dest != "help"
    }


# A library message names a parameter as `name`, `name=` or name=value (value a repr or a
# bare word).
_VALUE = r"""'[^']*'|"[^"]*"|[^\s;,)]+?"""
_END = r"(?=[\s;,)]|\.(?:\s|$)|$)"


def in_flags(message, flags):
    """A library error message in a subcommand's voice: each parameter that is one of
    its flags (`flags`: `{dest: "--flag"}`) written as that flag.

    Example:
    >>> in_flags("`ar_fraction` must be in [0, 1]; received ar_fraction=1.5.",
    ...          {"ar_fraction": "--ar-fraction"})
    '--ar-fraction must be in [0, 1]; received --ar-fraction 1.5.'
    >>> in_flags("source='text' needs `path=`.", {"source": "--source", "path": "--path"})
    '--source text needs --path.'
    """
    for dest, flag in sorted(flags.items(), key=lambda item: -len(item[0])):
        message = re.sub(rf"`{re.escape(dest)}=?`", flag, message)
        message = re.sub(
            rf"(?<![\w.-]){re.escape(dest)}=({_VALUE}){_END}",
            lambda match: f"{flag} {match.group(1).strip(chr(39) + chr(34))}",
            message,
        )
    return message


# The backends keras-dualobj runs on, and the extra that installs each.
BACKEND_EXTRAS = {"tensorflow": None, "jax": "jax", "torch": "torch"}


def check_backend(environment=None):
    """Raises, naming the fix, unless Keras will start on a backend we run on and that is
    installed: `KERAS_BACKEND`, else the one in Keras' config file, else TensorFlow.

    Example:
    >>> check_backend({"KERAS_BACKEND": "tensorflow"})
    'tensorflow'
    >>> check_backend({"KERAS_BACKEND": "pytorch"})
    Traceback (most recent call last):
    ...
    ValueError: KERAS_BACKEND='pytorch' is not a backend keras-dualobj runs on: set KERAS_BACKEND to tensorflow, jax or torch (did you mean 'torch'?).
    """
    environment = os.environ if environment is None else environment
    backend = environment.get("KERAS_BACKEND") or _configured_backend(environment)
    where = "KERAS_BACKEND" if environment.get("KERAS_BACKEND") else "Keras' config file"
    if backend not in BACKEND_EXTRAS:
        guess = difflib.get_close_matches(backend, BACKEND_EXTRAS, n=1, cutoff=0.5)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise ValueError(
            f"{where}={backend!r} is not a backend keras-dualobj runs on: set KERAS_BACKEND "
            f"to {', '.join(list(BACKEND_EXTRAS)[:-1])} or {list(BACKEND_EXTRAS)[-1]}{hint}."
        )
    if importlib.util.find_spec(backend) is None:  # each backend's module has its name
        extra = BACKEND_EXTRAS[backend]
        install = f"pip install 'keras-dualobj[{extra}]'" if extra else "pip install tensorflow"
        raise ImportError(
            f"{where} selects {backend}, which is not installed: {install}, or set "
            "KERAS_BACKEND to an installed backend."
        )
    return backend


def _configured_backend(environment):
    """The backend in Keras' config file (`$KERAS_HOME/keras.json`), else TensorFlow."""
    home = environment.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            return json.load(file).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"
