"""Training recipe and operations: the run's settings, checkpoints, callbacks, runs (and the
optimiser and schedule of `keras_dualobj.optimization`, re-exported).

The names load on first use (`keras_dualobj.utils.lazy`): `RunSpec`, the table of a run's
settings, is read by the command line before Keras is imported.
"""

from keras_dualobj.utils.lazy import lazy_exports

_MODULES = {
    "callbacks": ("PeriodicCheckpoint", "StopOnNonFiniteLoss", "ThroughputMeter", "TrainingLogs",
                  "TrainingProgress"),
    "checkpoints": ("CheckpointManager", "load_training_state", "save_training_state"),
    "distribution": ("make_distribution", "parse_distribution"),
    "run": ("TrainingDivergedError", "TrainingResult", "check_output_dir", "train"),
    "run_spec": ("RunSpec",),
}
_OPTIMIZATION = ("MatrixMuon", "PerUpdateSchedule", "build_optimizer", "muon_matrix_shapes",
                 "WarmupStableDecay", "warmup_stable_decay")

__getattr__, __dir__ = lazy_exports(__name__, {
    **{name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names},
    **{name: "keras_dualobj.optimization" for name in _OPTIMIZATION},
})
