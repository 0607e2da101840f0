"""Package attributes imported on first use (PEP 562), so that a light entry point stays light.

`keras-dualobj --help` or a mistyped flag should answer before Keras (and TensorFlow) is
imported; a package `__init__` that imports its modules eagerly makes every
`import keras_dualobj.<anything>` pay for Keras first.

>>> import types
>>> module = types.ModuleType("example")
>>> module.__getattr__, module.__dir__ = lazy_exports("example", {"sqrt": "math"})
>>> module.__getattr__("sqrt")(9.0)
3.0
"""

import importlib


def lazy_exports(package, exports):
    """`__getattr__` and `__dir__` for `package`, importing `exports[name]` when `name` is read.

    `exports` maps a public name to the module that defines it (a module's own name maps to
    itself: `{"data": "keras_dualobj.data"}`).
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(exports[name])
        return module if exports[name] == f"{package}.{name}" else getattr(module, name)

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
