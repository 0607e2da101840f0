"""Loading a saved `.keras` `DualLM`, with every class it names registered.

A saved model names its tokenizer (`keras_dualobj.data`) and its optimizer and schedule
(`keras_dualobj.optimization`); importing this module imports them, so Keras finds them.
"""

import zipfile
from pathlib import Path

import keras

import keras_dualobj.data  # noqa: F401  (registers the tokenizers)
import keras_dualobj.optimization  # noqa: F401  (registers the optimizer and schedules)
from keras_dualobj.models.dual_lm import DualLM


def load_model(path):
    """Loads a saved `.keras` `DualLM`, with the tokenizer saved alongside it.

    Example:
    >>> import os, tempfile
    >>> from keras_dualobj import DualBackbone, DualLM
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.keras")
    >>> DualLM(DualBackbone(vocabulary_size=64, num_layers=1, num_heads=2,
    ...                     hidden_dim=16, intermediate_dim=32)).save(path)
    >>> type(load_model(path)).__name__
    'DualLM'
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No saved model at {str(path)!r} (expected a `.keras` file).")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{str(path)!r} is not a `.keras` file (not a zip archive: truncated, damaged "
            "or another format). Pass the model.keras a training run wrote."
        )
    try:
        model = keras.saving.load_model(path)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"Cannot load {str(path)!r} as a keras_dualobj model "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "the file is damaged or was saved by another program."
        ) from None
    if not isinstance(model, DualLM):
        raise ValueError(
            f"{str(path)!r} holds a {type(model).__name__}, not a keras_dualobj DualLM."
        )
    return model
