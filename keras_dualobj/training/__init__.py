"""Training recipe and operations: optimiser, schedule, checkpoints, callbacks, runs."""

from keras_dualobj.training.callbacks import PeriodicCheckpoint
from keras_dualobj.training.callbacks import StopOnNonFiniteLoss
from keras_dualobj.training.callbacks import ThroughputMeter
from keras_dualobj.training.callbacks import TrainingLogs
from keras_dualobj.training.callbacks import TrainingProgress
from keras_dualobj.training.checkpoints import CheckpointManager
from keras_dualobj.training.checkpoints import load_training_state
from keras_dualobj.training.checkpoints import save_training_state
from keras_dualobj.training.distribution import make_distribution
from keras_dualobj.training.distribution import parse_distribution
from keras_dualobj.training.optimizers import MatrixMuon
from keras_dualobj.training.optimizers import PerUpdateSchedule
from keras_dualobj.training.optimizers import build_optimizer
from keras_dualobj.training.optimizers import muon_matrix_shapes
from keras_dualobj.training.run import TrainingDivergedError
from keras_dualobj.training.run_spec import RunSpec
from keras_dualobj.training.run import TrainingResult
from keras_dualobj.training.run import check_output_dir
from keras_dualobj.training.run import train
from keras_dualobj.training.schedules import WarmupStableDecay
from keras_dualobj.training.schedules import warmup_stable_decay
