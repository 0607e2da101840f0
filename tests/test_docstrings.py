"""Every docstring example in `keras_dualobj` runs and prints what it shows."""

import doctest
import inspect
import importlib
import pkgutil

import pytest

import keras_dualobj

MODULES = sorted(
    module.name
    for module in pkgutil.walk_packages(keras_dualobj.__path__, prefix="keras_dualobj.")
    if module.name != "keras_dualobj.__main__"
)


def test_every_package_is_covered():
    packages = {"data", "evaluation", "generation", "layers", "models", "objectives", "study", "training"}
    assert {f"keras_dualobj.{name}" for name in packages} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    results = doctest.testmod(
        module,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {name}"
    if ">>>" in inspect.getsource(module):
        assert results.attempted > 0, f"the examples in {name} were not collected"
