"""Callbacks of a training run: throughput, progress, logs, checkpoints, NaN stop.

A run (`keras_dualobj.training.train`) calls `fit()` with Keras "epochs" that are
*log segments* of `steps_per_segment` updates, so every epoch-level log is the mean
over the last segment and checkpoints fall on segment ends. These callbacks turn
Keras' `(epoch, batch)` into the global update count `step` (1 after the first
update). Under JAX the model's variables are only up to date at epoch ends, so
nothing here reads variables inside a segment.
"""

import csv
import math
import sys
import time
from collections import deque
from pathlib import Path

import keras
import numpy as np

from keras_dualobj.utils.validation import check_int

LOGGED_METRICS = ("loss", "ar_loss", "md_loss", "ar_accuracy", "md_accuracy", "z_loss")
CSV_COLUMNS = (
    ("step", "tokens", "learning_rate", "tokens_per_second")
    + LOGGED_METRICS
    + tuple(f"val_{name}" for name in LOGGED_METRICS)
)


class _StepTracking(keras.callbacks.Callback):
    """Keeps `self.step`, the number of updates applied, across fit calls."""

    def __init__(self, steps_per_segment):
        super().__init__()
        self.steps_per_segment = check_int("steps_per_segment", steps_per_segment, minimum=1)
        self.step = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch * self.steps_per_segment + batch + 1


def current_learning_rate(optimizer, step):
    """The learning rate of update `step + 1` (the schedule evaluated at `step`).

    Example:
    >>> import keras
    >>> current_learning_rate(keras.optimizers.SGD(0.5), step=3)
    0.5
    """
    schedule = optimizer._learning_rate
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class ThroughputMeter(_StepTracking):
    """Measures training tokens per second, leaving out compilation and evaluation.

    The time of a step is the wall time between consecutive batch ends (reading the
    loss forces asynchronous backends to finish the step). The first step of each
    `fit()` call (tracing / compilation) is counted separately as
    `compile_seconds`, and the clock restarts at every segment start, so validation
    and checkpointing between segments are not counted as training time.

    Args:
        tokens_per_step: int, `batch_size * sequence_length`.
        steps_per_segment: int, updates per Keras epoch.
        window: int, steps averaged by `recent_tokens_per_second`.

    Example:
    >>> meter = ThroughputMeter(tokens_per_step=4096, steps_per_segment=10)
    >>> meter.average_tokens_per_second is None
    True
    """

    def __init__(self, tokens_per_step, steps_per_segment, window=20):
        super().__init__(steps_per_segment)
        self.tokens_per_step = check_int("tokens_per_step", tokens_per_step, minimum=1)
        self._recent = deque(maxlen=check_int("window", window, minimum=1))
        self.training_seconds = 0.0
        self.timed_steps = 0
        self.compile_seconds = 0.0
        self._segment_seconds = 0.0
        self._segment_steps = 0
        self._last_time = None
        self._skip_next = True

    def on_train_begin(self, logs=None):
        self._skip_next = True

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._segment_seconds = 0.0
        self._segment_steps = 0
        self._last_time = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if logs and "loss" in logs:
            float(logs["loss"])  # waits for the step on asynchronous backends
        now = time.perf_counter()
        seconds, self._last_time = now - self._last_time, now
        if self._skip_next:
            self._skip_next = False
            self.compile_seconds += seconds
            return
        self.training_seconds += seconds
        self.timed_steps += 1
        self._segment_seconds += seconds
        self._segment_steps += 1
        self._recent.append(seconds)

    @staticmethod
    def _rate(tokens, seconds):
        return tokens / seconds if seconds > 0 else None

    @property
    def recent_tokens_per_second(self):
        """Over the last `window` timed steps, or `None` before the first."""
        return self._rate(self.tokens_per_step * len(self._recent), sum(self._recent))

    @property
    def segment_tokens_per_second(self):
        """Over the timed steps of the current segment, or `None`."""
        return self._rate(self.tokens_per_step * self._segment_steps, self._segment_seconds)

    @property
    def average_tokens_per_second(self):
        """Over every timed step of the run so far, or `None`."""
        return self._rate(self.tokens_per_step * self.timed_steps, self.training_seconds)


def format_duration(seconds):
    """`75` -> `'1:15'`, `3725` -> `'1:02:05'`."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _format_rate(tokens_per_second):
    if tokens_per_second is None:
        return "  --- tok/s"
    if tokens_per_second >= 1e6:
        return f"{tokens_per_second / 1e6:5.2f}M tok/s"
    return f"{tokens_per_second / 1e3:5.1f}k tok/s"


class TrainingProgress(_StepTracking):
    """A progress line with step, tokens/s, both losses, learning rate and ETA.

    On a terminal the line is redrawn in place (at most every `refresh_seconds`);
    at every segment end a permanent line is printed, and held-out AR / MD losses
    whenever the segment ended with a validation. In a log file (not a terminal)
    only the permanent lines appear.

    Args:
        total_steps: int, updates in the whole run.
        meter: the run's `ThroughputMeter` (placed before this callback).
        steps_per_segment: int, updates per Keras epoch.
        stream: where to write. Defaults to `sys.stdout`.
        refresh_seconds: float, minimum time between in-place redraws.
        evaluation_batches: held-out batches per periodic evaluation (`None`: the
            whole split), named on their lines.

    Example:
    >>> import io
    >>> meter = ThroughputMeter(tokens_per_step=64, steps_per_segment=5)
    >>> progress = TrainingProgress(10, meter, 5, stream=io.StringIO())
    >>> progress.format_line(5, {"loss": 2.0, "ar_loss": 1.5, "md_loss": 2.5})
    'step  5/10  50% |   --- tok/s | loss 2.000  ar 1.500  md 2.500'
    """

    def __init__(self, total_steps, meter, steps_per_segment, stream=None, refresh_seconds=0.25,
                 evaluation_batches=None):
        super().__init__(steps_per_segment)
        self.evaluation_batches = evaluation_batches
        self.total_steps = check_int("total_steps", total_steps, minimum=1)
        self.meter = meter
        self.stream = sys.stdout if stream is None else stream
        self.refresh_seconds = refresh_seconds
        self._is_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_logs = {}

    def format_line(self, step, logs, learning_rate=None):
        width = len(str(self.total_steps))
        percent = 100.0 * step / self.total_steps
        parts = [
            f"step {step:>{width}}/{self.total_steps} {percent:3.0f}%",
            _format_rate(self.meter.recent_tokens_per_second),
        ]
        losses = [f"loss {float(logs['loss']):.3f}"] if "loss" in logs else []
        losses += [
            f"{short} {float(logs[name]):.3f}"
            for name, short in (("ar_loss", "ar"), ("md_loss", "md"))
            if name in logs
        ]
        if losses:
            parts.append("  ".join(losses))
        if learning_rate is not None:
            parts.append(f"lr {learning_rate:.2e}")
        rate = self.meter.average_tokens_per_second
        if rate and step < self.total_steps:
            remaining = (self.total_steps - step) * self.meter.tokens_per_step / rate
            parts.append(f"eta {format_duration(remaining)}")
        return " | ".join(parts)

    def _write(self, text, permanent):
        if self._is_terminal:
            self.stream.write("\r\033[K" + text + ("\n" if permanent else ""))
        elif permanent:
            self.stream.write(text + "\n")
        self.stream.flush()

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._last_logs = dict(logs or {})
        now = time.monotonic()
        if self._is_terminal and now - self._last_draw >= self.refresh_seconds:
            self._last_draw = now
            self._write(self.format_line(self.step, self._last_logs), permanent=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        learning_rate = current_learning_rate(self.model.optimizer, max(self.step - 1, 0))
        self._write(self.format_line(self.step, logs, learning_rate), permanent=True)
        if "val_ar_loss" in logs or "val_md_loss" in logs:
            evaluation = _strip_prefix(logs, "val_")
            self.stream.write(
                format_evaluation(self.step, evaluation, self.evaluation_batches) + "\n"
            )
            self.stream.flush()


def _strip_prefix(logs, prefix):
    return {name[len(prefix) :]: value for name, value in logs.items() if name.startswith(prefix)}


def format_evaluation(step, results, batches=None):
    """One line with held-out AR and MD losses (nats per token) on the first `batches`
    held-out batches (`None`: the whole split), which it names: the periodic
    evaluations and the final one score different rows.

    Example:
    >>> format_evaluation(40, {"ar_loss": 2.5, "md_loss": 2.75}, batches=2)
    '  held-out at step 40 (first 2 batches): AR loss 2.500  MD loss (ELBO) 2.750'
    >>> format_evaluation(80, {"ar_loss": 2.25})
    '  held-out at step 80 (whole split): AR loss 2.250'
    """
    rows = "whole split" if batches is None else f"first {batches} batch{'es' * (batches > 1)}"
    parts = [f"  held-out at step {step} ({rows}):"]
    if "ar_loss" in results:
        parts.append(f"AR loss {float(results['ar_loss']):.3f}")
    if "md_loss" in results:
        parts.append(f" MD loss (ELBO) {float(results['md_loss']):.3f}")
    return " ".join(parts)


def _scalar_summary_metadata():
    # `tf.summary.scalar` lives in the `tensorboard` package, which TensorFlow no
    # longer installs; this is the record it writes (plugin "scalars"), built from
    # TensorFlow's own protos, so logs are written without that dependency.
    from tensorflow.core.framework import summary_pb2

    plugin = summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    return summary_pb2.SummaryMetadata(plugin_data=plugin).SerializeToString()


class TrainingLogs(_StepTracking):
    """CSV and TensorBoard logs, one row per segment, indexed by update step.

    Columns: `step`, `tokens` (seen so far), `learning_rate` (of the segment's
    last update), `tokens_per_second` (over the segment), the training metrics
    (means over the segment) and the held-out ones (`val_*`) where evaluated.
    TensorBoard scalars use the step as x-axis (`train/…`, `validation/…`).
    Resuming at step k first drops CSV rows after k, so the file reads as one run.

    Args:
        log_dir: folder for `training_log.csv` and `tensorboard/`.
        meter: the run's `ThroughputMeter`.
        steps_per_segment: int, updates per Keras epoch.
        resume_step: int, the step a resumed run restarts from (0 for a new run).
        tensorboard: bool, whether to write TensorBoard event files.

    Example:
    >>> import tempfile
    >>> meter = ThroughputMeter(tokens_per_step=64, steps_per_segment=5)
    >>> logs = TrainingLogs(tempfile.mkdtemp(), meter, 5, tensorboard=False)
    >>> logs.log_row(5, {"loss": 2.0}, learning_rate=1e-3)
    >>> logs.read_rows()[0]["loss"]
    '2.0'
    """

    CSV_FILE = "training_log.csv"

    def __init__(self, log_dir, meter, steps_per_segment, resume_step=0, tensorboard=True):
        super().__init__(steps_per_segment)
        self.log_dir = Path(log_dir)
        self.meter = meter
        self.csv_path = self.log_dir / self.CSV_FILE
        self.log_dir.mkdir(parents=True, exist_ok=True)
        kept = [row for row in self.read_rows() if int(row["step"]) <= resume_step]
        with open(self.csv_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        # Read back only when a step is logged twice, not on every row (O(rows) each).
        self._last_step = int(kept[-1]["step"]) if kept else None
        self.last_validation = None  # (step, held-out metrics) of the latest evaluation
        self._writer = None
        if tensorboard:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(self.log_dir / "tensorboard"))

    def read_rows(self):
        """The CSV rows written so far (dicts of strings)."""
        return read_log_rows(self.log_dir)

    def log_row(self, step, logs, learning_rate=None, tokens_per_second=None):
        """Appends one row (and TensorBoard scalars) for `step`; completes the last row
        instead when it is for the same step."""
        row = {
            "step": step,
            "tokens": step * self.meter.tokens_per_step,
            "learning_rate": learning_rate,
            "tokens_per_second": tokens_per_second,
        }
        row.update({name: float(logs[name]) for name in CSV_COLUMNS[4:] if name in logs})
        if step == self._last_step:
            rows = self.read_rows()
            # A later evaluation of a logged step (the final one, on the whole split)
            # completes that step's row: one row per step, as a plot reads it.
            rows[-1].update({name: value for name, value in row.items() if value is not None})
            with open(self.csv_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        else:
            with open(self.csv_path, "a", newline="") as file:
                csv.DictWriter(file, fieldnames=CSV_COLUMNS).writerow(row)
        self._last_step = step
        if self._writer is not None:
            import tensorflow as tf

            metadata = _scalar_summary_metadata()
            with self._writer.as_default(step=step):
                for name, value in row.items():
                    if value is None or name == "step":
                        continue
                    if name.startswith("val_"):
                        tag = f"validation/{name[4:]}"
                    elif name in LOGGED_METRICS:
                        tag = f"train/{name}"
                    else:
                        tag = f"run/{name}"
                    tf.summary.write(
                        tag, tf.constant(value, tf.float32), metadata=metadata
                    )
            self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        held_out = _strip_prefix(logs, "val_")
        if held_out:
            self.last_validation = (self.step, {k: float(v) for k, v in held_out.items()})
        self.log_row(
            self.step,
            logs,
            learning_rate=current_learning_rate(self.model.optimizer, max(self.step - 1, 0)),
            tokens_per_second=self.meter.segment_tokens_per_second,
        )

    def close(self):
        if self._writer is not None:
            self._writer.close()


class StopOnNonFiniteLoss(_StepTracking):
    """Stops training at the first step whose loss is NaN or infinite.

    After the stop, `failed_step` is that step and `message` names it and the
    last good checkpoint (from `checkpoint_manager`), which is what `--resume`
    would restart from. `PeriodicCheckpoint` never saves a non-finite state.

    Args:
        steps_per_segment: int, updates per Keras epoch.
        checkpoint_manager: optional `CheckpointManager` of the run.

    Example:
    >>> stop = StopOnNonFiniteLoss(steps_per_segment=10)
    >>> stop.failed_step is None
    True
    """

    def __init__(self, steps_per_segment, checkpoint_manager=None):
        super().__init__(steps_per_segment)
        self.checkpoint_manager = checkpoint_manager
        self.failed_step = None
        self.failed_loss = None
        self.message = None

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        if math.isfinite(loss):
            return
        self.failed_step, self.failed_loss = self.step, loss
        latest = None if self.checkpoint_manager is None else self.checkpoint_manager.latest()
        where = (
            f"the last good checkpoint is {latest} (step "
            f"{self.checkpoint_manager.step_of(latest)})"
            if latest is not None
            else "there is no checkpoint yet"
        )
        self.message = (
            f"Training stopped: the loss became {loss} at step {self.step}; {where}. "
            "Lower the learning rate or enable gradient clipping, then restart (or "
            "--resume from that checkpoint)."
        )
        self.model.stop_training = True


class PeriodicCheckpoint(_StepTracking):
    """Saves a checkpoint at segment ends every `checkpoint_every` steps and at the end.

    Never saves when the segment's loss is not finite (the run is stopping on a
    NaN), so the latest checkpoint is always a good one.

    Args:
        checkpoint_manager: the run's `CheckpointManager`.
        checkpoint_every: int, save when `step % checkpoint_every == 0`.
        total_steps: int, the last step is always saved.
        steps_per_segment: int, updates per Keras epoch.
        metadata: optional callable `step -> dict` stored with each checkpoint.

    Example:
    >>> import tempfile
    >>> from keras_dualobj.training.checkpoints import CheckpointManager
    >>> saver = PeriodicCheckpoint(CheckpointManager(tempfile.mkdtemp()), 20, 100, 10)
    >>> saver.should_save(20), saver.should_save(30), saver.should_save(100)
    (True, False, True)
    """

    def __init__(
        self, checkpoint_manager, checkpoint_every, total_steps, steps_per_segment, metadata=None
    ):
        super().__init__(steps_per_segment)
        self.checkpoint_manager = checkpoint_manager
        self.checkpoint_every = check_int("checkpoint_every", checkpoint_every, minimum=1)
        self.total_steps = check_int("total_steps", total_steps, minimum=1)
        self.metadata = metadata
        self.last_saved_step = None

    def should_save(self, step):
        return step % self.checkpoint_every == 0 or step == self.total_steps

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            return
        if self.should_save(self.step):
            metadata = self.metadata(self.step) if self.metadata else None
            self.checkpoint_manager.save(self.model, self.step, metadata)
            self.last_saved_step = self.step


def read_log_rows(log_dir):
    """The rows of a run's `training_log.csv` in `log_dir` (dicts of strings), or `[]`."""
    path = Path(log_dir) / TrainingLogs.CSV_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))
