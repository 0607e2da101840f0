"""The optimiser recipe: Muon for the matrices with AdamW for the rest, and the
warmup-stable-decay schedule (Keras optimizer and schedule classes, registered for saving)."""

from keras_dualobj.optimization.optimizers import MatrixMuon
from keras_dualobj.optimization.optimizers import PerUpdateSchedule
from keras_dualobj.optimization.optimizers import build_optimizer
from keras_dualobj.optimization.optimizers import muon_matrix_shapes
from keras_dualobj.optimization.schedules import WarmupStableDecay
from keras_dualobj.optimization.schedules import warmup_stable_decay
