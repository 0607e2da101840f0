"""A training run: `fit()` in log segments, with checkpoints, logs and exact resume.

`train()` owns an output directory:

    output_dir/
      run.json                 the run's configuration (its identity)
      checkpoints/step_*/      the last N checkpoints (see `checkpoints.py`)
      logs/training_log.csv    one row per log segment, by step
      logs/tensorboard/        the same as TensorBoard scalars
      model.keras              the final model (with its tokenizer, if any)
      manifest.json            every path the run wrote (`--overwrite` deletes those)

Keras "epochs" are segments of `log_every` updates, so segment means are the logged
values and every checkpoint falls on a segment end. A run killed at any point and
started again with `resume=True` restores the latest checkpoint (weights, optimizer
and schedule state, random-generator states) and asks the data for the batches from
that step on (`train_dataset_fn(step)`), so it ends with the same weights as an
uninterrupted run.
"""

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from keras_dualobj.training.callbacks import PeriodicCheckpoint
from keras_dualobj.training.callbacks import StopOnNonFiniteLoss
from keras_dualobj.training.callbacks import ThroughputMeter
from keras_dualobj.training.callbacks import TrainingLogs
from keras_dualobj.training.callbacks import TrainingProgress
from keras_dualobj.training.callbacks import format_evaluation
from keras_dualobj.training.checkpoints import CheckpointManager
from keras_dualobj.training.evaluation_schedule import EVALUATION_BATCHES
from keras_dualobj.training.evaluation_schedule import default_eval_every
from keras_dualobj.training.evaluation_schedule import validation_epochs
from keras_dualobj.training.checkpoints import restore_global_generator_states
from keras_dualobj.training.atomic_files import atomic_path
from keras_dualobj.training.atomic_files import atomic_write_text
from keras_dualobj.training.interrupts import interrupt_callbacks
from keras_dualobj.training.manifest import delete_written
from keras_dualobj.training.manifest import record_written
from keras_dualobj.training.run_lock import LOCK_FILE
from keras_dualobj.training.run_lock import holds_run_lock
from keras_dualobj.utils.validation import check_int

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and checkpoint."""


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run did.

    Attributes:
        output_dir: the run's folder.
        start_step: 0, or the checkpoint step a resumed run restarted from.
        total_steps: updates in the whole run (all done).
        evaluation: held-out metrics of the final model (`ar_loss`, `md_loss`, ...)
            or `None` without validation data.
        tokens_per_second: mean training throughput of this process (compilation,
            evaluation and checkpointing excluded), or `None` if no step was timed.
        compile_seconds: time of the first step of each `fit()` call.
        wall_seconds: wall time of `train()`.
        model_path: the saved `.keras` model.
        checkpoint: the final checkpoint folder.
    """

    output_dir: Path
    start_step: int
    total_steps: int
    evaluation: dict
    tokens_per_second: float
    compile_seconds: float
    wall_seconds: float
    model_path: Path
    checkpoint: Path


def normalise_config(config):
    """`config` as it reads back from JSON (a `RunSpec` becomes its dict).

    Example:
    >>> normalise_config({"b": (1, 2), "a": None})
    {'a': None, 'b': [1, 2]}
    """
    if hasattr(config, "to_json"):
        config = config.to_json()
    return json.loads(json.dumps(config, sort_keys=True))


def config_differences(stored, given):
    """One line per key whose value differs between two normalised configs.

    Example:
    >>> config_differences({"seed": 0}, {"seed": 1})
    ['seed: 0 in the directory vs 1 now']
    """
    keys = sorted(set(stored) | set(given))
    return [
        f"{key}: {stored.get(key, '<absent>')!r} in the directory vs {given.get(key, '<absent>')!r} now"
        for key in keys
        if stored.get(key) != given.get(key)
    ]


def read_run_config(output_dir):
    """The configuration stored by a run in `output_dir`, or `None`."""
    path = Path(output_dir) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())["config"]


def check_output_dir(output_dir, run_config, resume=False, overwrite=False, dry_run=False):
    """Decides whether a run may use `output_dir`; returns `"new"` or `"resume"`.

    - A missing or empty folder: a new run; with `resume=True`, a `ValueError`
      (there is nothing to resume).
    - A folder holding a run (`run.json`): with `resume=True`, resumed if its
      configuration equals `run_config` (else a `ValueError` listing the
      differences); with `overwrite=True`, what the run wrote (its
      `manifest.json`) is deleted and a new run starts; otherwise refused with a
      `ValueError` saying which flag to pass.
    - A non-empty folder without `run.json` (not ours): refused unless
      `overwrite=True`, which deletes only what a run wrote there (see
      `keras_dualobj.training.manifest`) and leaves other files alone.

    `dry_run=True` decides and raises as above but deletes nothing (the `train`
    command checks this way before preparing the data; `train()` deletes).

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_dir(folder, {"seed": 0})
    'new'
    """
    if resume and overwrite:
        raise ValueError("Pass at most one of `resume` and `overwrite`; received both.")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"Output directory {str(output_dir)!r} exists and is not a folder.")
    entries = sorted(path.name for path in output_dir.iterdir()) if output_dir.is_dir() else []
    entries = [name for name in entries if name != LOCK_FILE]
    stored = read_run_config(output_dir)
    if resume and stored is None:
        raise ValueError(
            f"--resume: nothing to resume: {str(output_dir)!r} holds no training run (no "
            f"{RUN_FILE}). Check --output-dir, or drop --resume to start a new run there."
        )
    if not entries:
        return "new"
    given = normalise_config(run_config)
    if stored is not None and resume:
        differences = config_differences(stored, given)
        if differences:
            raise ValueError(
                f"Cannot resume the run in {str(output_dir)!r} with a different "
                f"configuration: {'; '.join(differences)}. Resume with the stored "
                "configuration, or pass --overwrite to start a new run there."
            )
        return "resume"
    if overwrite:
        if not dry_run:
            delete_written(output_dir)
        return "new"
    _refuse_occupied(output_dir, entries, stored, given)


def _refuse_occupied(output_dir, entries, stored, given):
    """The `ValueError` for a folder that holds files and neither flag was given."""
    if stored is None:
        raise ValueError(
            f"Output directory {str(output_dir)!r} is not empty and holds no training "
            f"run ({len(entries)} entries, e.g. {entries[:3]}). Choose an empty or new "
            "folder, or pass --overwrite (deletes only what a run wrote there)."
        )
    checkpoints = CheckpointManager(output_dir / CHECKPOINT_DIR).checkpoints()
    latest = (
        f"latest checkpoint at step {CheckpointManager.step_of(checkpoints[-1])}"
        if checkpoints
        else "no checkpoint yet"
    )
    differences = config_differences(stored, given)
    which = (
        "the same configuration"
        if not differences
        else f"a different configuration ({'; '.join(differences[:5])})"
    )
    raise ValueError(
        f"Output directory {str(output_dir)!r} already holds a training run with "
        f"{which}; {latest}. Pass --resume to continue it or --overwrite to delete its "
        "checkpoints and logs and start again."
    )


class _RestoreGlobalGenerators(keras.callbacks.Callback):
    """Applies a checkpoint's global generator states just before the first step.

    Not earlier: under PyTorch, `fit()` draws from the global generator while it
    builds the model and when it opens the data iterator (a torch `DataLoader`
    takes a base seed), which the uninterrupted run did only once, at its start.
    """

    def __init__(self, states):
        super().__init__()
        self.states = states

    def on_train_batch_begin(self, batch, logs=None):
        if self.states:
            restore_global_generator_states(self.states)
            self.states = {}


def _check_run_arguments(
    model, train_dataset_fn, total_steps, tokens_per_step, log_every, eval_every,
    checkpoint_every,
):
    """Validates `train()`'s arguments; returns `(eval_every, checkpoint_every)`."""
    check_int("total_steps", total_steps, minimum=1)
    check_int("tokens_per_step", tokens_per_step, minimum=1)
    check_int("log_every", log_every, minimum=1)
    eval_every = default_eval_every(total_steps, log_every) if eval_every is None else eval_every
    check_int("eval_every", eval_every, minimum=1)
    checkpoint_every = eval_every if checkpoint_every is None else checkpoint_every
    check_int("checkpoint_every", checkpoint_every, minimum=1)
    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if value % log_every:
            raise ValueError(
                f"`{name}` must be a multiple of `log_every` (checkpoints and evaluations "
                f"fall on log-segment ends); received {name}={value}, log_every={log_every}."
            )
    if model.optimizer is None:
        raise ValueError("Compile the model before `train()` (model.compile(optimizer=...)).")
    if not callable(train_dataset_fn):
        raise TypeError(
            "`train_dataset_fn` must be a callable start_step -> dataset; received "
            f"{type(train_dataset_fn).__name__}."
        )
    return eval_every, checkpoint_every


def _start_or_resume(model, manager, mode, output_dir, run_config, total_steps, log_every, stream):
    """Restores the latest checkpoint of a resumed run, or records a new run's config.

    Returns `(start_step, global_generator_states)`.
    """
    start_step = 0
    generator_states = {}
    if mode == "resume" and manager.latest() is not None:
        record = manager.restore(model, restore_global_generators=False)
        start_step = int(record["step"])
        generator_states = record["global_generator_states"]
        if stream is not None:
            stream.write(f"Resuming from {manager.latest()} (step {start_step}).\n")
    elif mode == "resume" and stream is not None:
        stream.write(f"No checkpoint in {output_dir}; starting the run from step 0.\n")
    if mode == "new":
        record_written(output_dir, files=[RUN_FILE])
        atomic_write_text(
            output_dir / RUN_FILE,
            json.dumps({"config": run_config, "total_steps": total_steps}, indent=1),
        )
    if start_step > total_steps or (start_step % log_every and start_step != total_steps):
        raise ValueError(
            f"The latest checkpoint is at step {start_step}, which is not a log-segment "
            f"end of this run (log_every={log_every}, total_steps={total_steps})."
        )
    return start_step, generator_states


def _open_logs(output_dir, meter, segment, start_step):
    """The run's `TrainingLogs`, with the files they write recorded in the manifest."""
    log_dir = output_dir / LOG_DIR
    board = log_dir / "tensorboard"
    record_written(output_dir, files=[log_dir / TrainingLogs.CSV_FILE], folders=[log_dir, board])
    before = set(board.iterdir()) if board.is_dir() else set()
    logs = TrainingLogs(log_dir, meter, segment, resume_step=start_step)
    # TensorFlow names the event file (time, host, pid) as it opens the writer.
    record_written(output_dir, files=sorted(set(board.iterdir()) - before))
    return logs


def _fit_calls(start_step, total_steps, segment):
    """`(first_step, epochs, initial_epoch, steps_per_epoch)` of each `fit()` call.

    Full log segments go in one call (a Keras epoch each), a shorter last segment in
    a second one; a resumed run starts at its checkpoint's segment.

    Example:
    >>> _fit_calls(0, 25, 10)
    [(0, 2, 0, 10), (20, 3, 2, 5)]
    """
    full_segments, remainder = divmod(total_steps, segment)
    calls = []
    if start_step < full_segments * segment:
        calls.append((start_step, full_segments, start_step // segment, segment))
    if remainder and start_step <= full_segments * segment:
        calls.append((full_segments * segment, full_segments + 1, full_segments, remainder))
    return calls


def _first_batches(validation_data, steps):
    """`(data, steps)` for Keras that score the first `steps` batches (`None`: all).

    A `tf.data.Dataset` is cut with `take(steps)` and read to its end. Keras's
    `steps=N` leaves its iterator part-read, and dropping such an iterator at the next
    evaluation cost 0.5-1 s per call on TensorFlow, more than the 2 batches it scored
    (docs/performance.md, section 3). Other inputs keep `steps`.
    """
    import tensorflow as tf

    if steps is None or not isinstance(validation_data, tf.data.Dataset):
        return validation_data, steps
    return validation_data.take(steps), None


def _final_evaluation(model, logs, total_steps, validation_data, validation_steps, stream):
    """The held-out evaluation at the last step on `validation_steps` batches: reused
    if the last segment ended with one (only when the periodic evaluations score the
    same batches), else run (and logged) now; `None` without validation data."""
    if logs.last_validation is not None and logs.last_validation[0] == total_steps:
        return logs.last_validation[1]
    if validation_data is None:
        return None
    data, steps = _first_batches(validation_data, validation_steps)
    evaluation = model.evaluate(data, steps=steps, return_dict=True, verbose=0)
    evaluation = {name: float(value) for name, value in evaluation.items()}
    logs.log_row(total_steps, {f"val_{name}": v for name, v in evaluation.items()})
    if stream is not None:
        stream.write(format_evaluation(total_steps, evaluation, validation_steps) + "\n")
    return evaluation


@holds_run_lock("output_dir")
def train(
    model,
    train_dataset_fn,
    total_steps,
    output_dir,
    tokens_per_step,
    validation_data=None,
    validation_steps=EVALUATION_BATCHES,
    final_validation_steps=None,
    run_config=None,
    log_every=10,
    eval_every=None,
    checkpoint_every=None,
    keep_checkpoints=3,
    resume=False,
    overwrite=False,
    callbacks=(),
    stream=None,
):
    """Trains a compiled model for `total_steps` updates, resumably.

    Args:
        model: a compiled `DualLM` (any compiled Keras model works).
        train_dataset_fn: callable `start_step -> dataset` giving the batches of
            steps `start_step, start_step + 1, ...` (at least up to `total_steps`),
            e.g. a `tf.data.Dataset`; a resumed run calls it with the checkpoint's
            step, so it must be deterministic.
        total_steps: int. Updates in the whole run.
        output_dir: folder of the run (see the module docstring).
        tokens_per_step: int. `batch_size * sequence_length`, for tokens/s.
        validation_data: optional held-out dataset; evaluated every `eval_every`
            steps and at the end.
        validation_steps: batches per periodic evaluation (default
            `EVALUATION_BATCHES`; `None`: all).
        final_validation_steps: batches of the final evaluation, the run's result
            (default `None`: the whole split).
        run_config: a `RunSpec` or a JSON-serialisable dict identifying the run
            (model, data, optimiser, seed). Stored as `run.json`; a resume must
            match it.
        log_every: int. Steps per log segment (a Keras epoch).
        eval_every: int multiple of `log_every`, or `None` for about
            `EVALUATIONS_PER_RUN` per run (`default_eval_every`).
        checkpoint_every: int multiple of `log_every`, or `None` for `eval_every`.
        keep_checkpoints: int >= 1. Checkpoints kept on disk.
        resume: continue the run in `output_dir` from its latest checkpoint (an
            error if the folder holds no run).
        overwrite: delete a previous run's outputs in `output_dir` first (only
            the paths its `manifest.json` lists; other files stay).
        callbacks: extra Keras callbacks (run after the built-in ones).
        stream: where progress goes; `sys.stdout` by default, `False` for silence.

    Returns:
        A `TrainingResult`.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.
        ValueError: bad arguments, or an output directory that holds another run.

    Example:
    >>> import tempfile, numpy as np, tensorflow as tf
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(64, 1, 2, 32, 48), seed=0)
    >>> model.compile(optimizer="auto")
    >>> rows = np.random.default_rng(0).integers(5, 64, (64, 16)).astype("int32")
    >>> data = lambda start: tf.data.Dataset.from_tensor_slices(rows).batch(4).skip(start)
    >>> result = train(model, data, total_steps=8, output_dir=tempfile.mkdtemp(),
    ...                tokens_per_step=64, log_every=4, stream=False)
    >>> result.total_steps, result.checkpoint.name
    (8, 'step_00000008')
    """
    started = time.perf_counter()
    eval_every, checkpoint_every = _check_run_arguments(
        model, train_dataset_fn, total_steps, tokens_per_step, log_every, eval_every,
        checkpoint_every,
    )
    stream = sys.stdout if stream is None else stream
    quiet = stream is False
    run_config = normalise_config(run_config or {})

    output_dir = Path(output_dir)
    mode = check_output_dir(output_dir, run_config, resume=resume, overwrite=overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    manager = CheckpointManager(
        output_dir / CHECKPOINT_DIR,
        keep_last=keep_checkpoints,
        on_write=lambda path: record_written(output_dir, files=[path], folders=[path.parent]),
    )
    start_step, generator_states = _start_or_resume(
        model, manager, mode, output_dir, run_config, total_steps, log_every,
        None if quiet else stream,
    )

    segment = log_every
    meter = ThroughputMeter(tokens_per_step, segment)
    stop = StopOnNonFiniteLoss(segment, manager)
    saver = PeriodicCheckpoint(
        manager,
        checkpoint_every,
        total_steps,
        segment,
        metadata=lambda step: {"tokens_seen": step * tokens_per_step},
    )
    logs = _open_logs(output_dir, meter, segment, start_step)
    run_callbacks = [_RestoreGlobalGenerators(generator_states), meter, stop, saver, logs]
    run_callbacks += interrupt_callbacks(manager, saver.metadata)  # Ctrl-C: save, stop
    if not quiet:
        run_callbacks.append(TrainingProgress(
            total_steps, meter, segment, stream=stream, evaluation_batches=validation_steps
        ))
    run_callbacks.extend(callbacks)

    epochs_with_validation = validation_epochs(
        total_steps, segment, eval_every, validation_steps == final_validation_steps
    )
    periodic_data, periodic_steps = _first_batches(validation_data, validation_steps)
    try:
        for first_step, epochs, initial_epoch, steps_per_epoch in _fit_calls(
            start_step, total_steps, segment
        ):
            with_validation = validation_data is not None and steps_per_epoch == segment
            model.fit(
                train_dataset_fn(first_step),
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_data=periodic_data if with_validation else None,
                validation_steps=periodic_steps,
                validation_freq=epochs_with_validation,
                callbacks=run_callbacks,
                # The data decides the order (it must, to resume at a step).
                shuffle=False,
                verbose=0,
            )
            if stop.failed_step is not None:
                raise TrainingDivergedError(stop.message)
        evaluation = _final_evaluation(
            model, logs, total_steps, validation_data, final_validation_steps,
            None if quiet else stream,
        )
        final_checkpoint = manager.latest()
        if final_checkpoint is None or manager.step_of(final_checkpoint) != total_steps:
            final_checkpoint = manager.save(model, total_steps)
    finally:
        logs.close()
    model_path = output_dir / MODEL_FILE
    record_written(output_dir, files=[MODEL_FILE])
    with atomic_path(model_path, suffix=".keras") as partial_path:
        model.save(partial_path)
    rate = meter.average_tokens_per_second
    return TrainingResult(
        output_dir=output_dir,
        start_step=start_step,
        total_steps=total_steps,
        evaluation=evaluation,
        tokens_per_second=None if rate is None or math.isnan(rate) else rate,
        compile_seconds=meter.compile_seconds,
        wall_seconds=time.perf_counter() - started,
        model_path=model_path,
        checkpoint=final_checkpoint,
    )
