"""Ctrl-C without losing the run: finish the log segment, save a checkpoint, stop.

Inside `graceful_interrupts()`, the first SIGINT (Ctrl-C) during training does not
kill the process: it asks the training run to stop. `train()` adds an `InterruptCheckpoint` callback
while such a block is active; at the end of the current log segment (a resumable
position: the data pipeline and the logs are indexed by segment ends) it saves a
checkpoint, unless the run just saved one there, and raises `TrainingInterrupted`,
whose message says where the checkpoint is. `--resume` (`resume=True`) continues
from it to the same final weights as an uninterrupted run. A second Ctrl-C raises
`KeyboardInterrupt` at once: the run then resumes from its last periodic checkpoint.
Outside training (preparing data, the final evaluation, writing files, which are all
atomic) Ctrl-C raises `KeyboardInterrupt` at once, as usual.
"""

import contextlib
import signal
import sys
import threading

import keras


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving a checkpoint.

    A `KeyboardInterrupt`, so that code catching `Exception` does not swallow it.

    Attributes:
        step: the step the run stopped at (`None` if it stopped before its first
            step).
        checkpoint: the checkpoint folder to resume from, or `None`.
    """

    def __init__(self, step=None, checkpoint=None):
        self.step = step
        self.checkpoint = checkpoint
        if checkpoint is None:
            message = "Interrupted before the first training step; nothing new to save."
        else:
            message = f"Interrupted at step {step}; saved checkpoint {checkpoint}."
        super().__init__(message)


class _InterruptState:
    def __init__(self):
        self.depth = 0
        self.requested = False
        self.training = False  # inside fit() of a run with an InterruptCheckpoint


_STATE = _InterruptState()


def interrupt_requested():
    """Whether Ctrl-C was pressed inside the active `graceful_interrupts()` block."""
    return _STATE.depth > 0 and _STATE.requested


def request_interrupt():
    """Does what the first Ctrl-C does (for callers that stop runs another way)."""
    _STATE.requested = True


@contextlib.contextmanager
def graceful_interrupts(stream=None):
    """Within this block, the first Ctrl-C stops training at a checkpoint.

    Outside the main thread (where Python cannot install signal handlers) Ctrl-C
    keeps its default behaviour; `request_interrupt()` still works.

    Args:
        stream: where the "stopping..." notice goes (default `sys.stderr`).

    Example:
    >>> with graceful_interrupts():
    ...     interrupt_requested()
    False
    """
    stream = sys.stderr if stream is None else stream

    def handle(signum, frame):
        if _STATE.requested or not _STATE.training:
            raise KeyboardInterrupt
        _STATE.requested = True
        stream.write(
            "\n[keras_dualobj] Ctrl-C: stopping at the end of this log segment after "
            "saving a checkpoint (press Ctrl-C again to stop at once; the run then "
            "resumes from its last periodic checkpoint).\n"
        )
        stream.flush()

    install = threading.current_thread() is threading.main_thread() and _STATE.depth == 0
    previous = signal.signal(signal.SIGINT, handle) if install else None
    _STATE.depth += 1
    if _STATE.depth == 1:
        _STATE.requested = False
    try:
        yield
    finally:
        _STATE.depth -= 1
        if _STATE.depth == 0:
            _STATE.requested = False
            _STATE.training = False
        if install:
            signal.signal(signal.SIGINT, previous)


class InterruptCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint and raises `TrainingInterrupted` once Ctrl-C was pressed.

    Put it after the run's logging and periodic-checkpoint callbacks, so that the
    segment's log row is written and an already saved checkpoint is reused.

    Args:
        checkpoint_manager: the run's `CheckpointManager`.
        metadata: optional callable `step -> dict` stored with the checkpoint.

    Example:
    >>> import tempfile
    >>> from keras_dualobj.training.checkpoints import CheckpointManager
    >>> callback = InterruptCheckpoint(CheckpointManager(tempfile.mkdtemp()))
    >>> callback.on_epoch_end(0)  # nothing requested: training goes on
    """

    def __init__(self, checkpoint_manager, metadata=None):
        super().__init__()
        self.checkpoint_manager = checkpoint_manager
        self.metadata = metadata

    def on_train_begin(self, logs=None):
        if interrupt_requested():
            raise TrainingInterrupted()
        _STATE.training = True

    def on_train_end(self, logs=None):
        _STATE.training = False

    def on_epoch_end(self, epoch, logs=None):
        if not interrupt_requested() or self.model.stop_training:
            return  # a non-finite loss stops the run on its own, unsaved
        _STATE.training = False  # a Ctrl-C while saving stops at once (it is atomic)
        # The optimizer counts the updates of the whole run (it is checkpointed).
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        manager = self.checkpoint_manager
        latest = manager.latest()
        if latest is None or manager.step_of(latest) != step:
            metadata = self.metadata(step) if self.metadata else None
            latest = manager.save(self.model, step, metadata)
        raise TrainingInterrupted(step, latest)


def interrupt_callbacks(checkpoint_manager, metadata=None):
    """`[InterruptCheckpoint(...)]` inside `graceful_interrupts()`, else `[]`.

    Example:
    >>> import tempfile
    >>> from keras_dualobj.training.checkpoints import CheckpointManager
    >>> manager = CheckpointManager(tempfile.mkdtemp())
    >>> interrupt_callbacks(manager)
    []
    >>> with graceful_interrupts():
    ...     [type(c).__name__ for c in interrupt_callbacks(manager)]
    ['InterruptCheckpoint']
    """
    if _STATE.depth == 0:
        return []
    return [InterruptCheckpoint(checkpoint_manager, metadata)]
