"""keras-dualobj: dual-objective (autoregressive + masked diffusion) language models."""

from keras_dualobj import layers
from keras_dualobj import objectives
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM

__version__ = "0.1.0"
