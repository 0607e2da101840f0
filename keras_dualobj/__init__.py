"""keras-dualobj: dual-objective (autoregressive + masked diffusion) language models."""

from keras_dualobj import layers
from keras_dualobj import objectives
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM

# A saved `.keras` model names its tokenizer (keras_dualobj.data) and optimizer and
# schedule (keras_dualobj.training); importing them registers those classes, so
# `import keras_dualobj; keras.saving.load_model(path)` works.
from keras_dualobj import data  # noqa: E402
from keras_dualobj import training  # noqa: E402

__version__ = "0.1.0"
