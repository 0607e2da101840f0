"""The dual model: backbone, task and its preprocessor.

The classes load on first use (`keras_dualobj.utils.lazy`): `keras_dualobj.models.presets`,
a table the command line reads before Keras is imported, must not import Keras.
"""

from keras_dualobj.utils.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "DualBackbone": "keras_dualobj.models.dual_backbone",
    # Through `saving`, which registers every class a saved model names.
    "DualLM": "keras_dualobj.models.saving",
    "DualLMPreprocessor": "keras_dualobj.models.dual_lm_preprocessor",
})
