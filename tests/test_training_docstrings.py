"""Every docstring example of the training recipe, presets and `train` command runs."""

import doctest
import importlib
import pkgutil

import pytest

import keras_dualobj.training

MODULES = [
    f"keras_dualobj.training.{m.name}"
    for m in pkgutil.iter_modules(keras_dualobj.training.__path__)
] + ["keras_dualobj.models.presets"]


def test_every_training_module_is_covered():
    names = {name.rsplit(".", 1)[1] for name in MODULES}
    assert {"schedules", "optimizers", "checkpoints", "callbacks", "run", "presets"} <= names


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    results = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {name}"
    assert results.attempted > 0


def test_from_preset_docstrings_run():
    from keras_dualobj.models import dual_backbone
    from keras_dualobj.models import dual_lm

    for method in (dual_backbone.DualBackbone.from_preset, dual_lm.DualLM.from_preset):
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in finder.find(method, globs=vars(importlib.import_module(method.__module__))):
            runner.run(test)
        assert runner.summarize(verbose=False).failed == 0, method.__qualname__
        assert runner.summarize(verbose=False).attempted > 0
