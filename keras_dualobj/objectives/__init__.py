"""Noise, masking and losses of the dual objective, as pure functions of tensors."""

from keras_dualobj.objectives.losses import ar_loss
from keras_dualobj.objectives.losses import md_loss
from keras_dualobj.objectives.losses import token_accuracy
from keras_dualobj.objectives.losses import token_cross_entropy
from keras_dualobj.objectives.losses import z_loss
from keras_dualobj.objectives.masking import maskable_positions
from keras_dualobj.objectives.masking import next_token_targets
from keras_dualobj.objectives.masking import sample_ar_rows
from keras_dualobj.objectives.masking import sample_masked_positions
