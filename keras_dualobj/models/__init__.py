"""The dual model: backbone, task and its preprocessor."""

from keras_dualobj.models.dual_backbone import DualBackbone
from keras_dualobj.models.dual_lm import DualLM
from keras_dualobj.models.dual_lm_preprocessor import DualLMPreprocessor
