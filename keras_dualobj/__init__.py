"""keras-dualobj: dual-objective (autoregressive + masked diffusion) language models.

The public names load on first use (`keras_dualobj.utils.lazy`), so that the command line
parses its arguments before Keras is imported. Once Keras is loaded (it always is before a
`.keras` file can be read), importing this package loads all of it: a saved model names its
tokenizer (`keras_dualobj.data`) and optimizer and schedule (`keras_dualobj.optimization`), and
`import keras, keras_dualobj; keras.saving.load_model(path)` needs them registered.
`keras_dualobj.load_model(path)` works in any order.
"""

import sys

from keras_dualobj.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "DualBackbone": "keras_dualobj.models",
    "DualLM": "keras_dualobj.models",
    "load_model": "keras_dualobj.models.saving",
    **{name: f"keras_dualobj.{name}" for name in (
        "data", "layers", "models", "objectives", "optimization", "training")},
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if "keras" in sys.modules:
    from keras_dualobj.models import saving as _saving  # noqa: F401  (registers every saved class)
