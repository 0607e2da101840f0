"""The dual model: backbone and task."""

from keras_dualobj.models.dual_backbone import DualBackbone
from keras_dualobj.models.dual_lm import DualLM
