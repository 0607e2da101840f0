"""Every docstring example in `keras_dualobj.data` runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import keras_dualobj.data

MODULES = sorted(m.name for m in pkgutil.iter_modules(keras_dualobj.data.__path__))


def test_every_module_is_covered():
    assert {"corpus", "packing", "pipeline", "repetition", "prepare"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"keras_dualobj.data.{name}")
    results = doctest.testmod(
        module,
        extraglobs=dict(vars(keras_dualobj.data)),
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {name}"
    assert results.attempted > 0 or name == "__init__"
