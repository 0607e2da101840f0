"""Training checkpoints: everything a killed run needs to continue exactly.

A checkpoint is a folder `step_<8 digits>/` holding

- `state.npz`: every model variable (weights *and* the `SeedGenerator` states that
  drive the row split and the masks) and every optimizer variable (iteration count,
  which is also the learning-rate schedule's position, momenta, velocities);
  Under PyTorch it also holds torch's global generator state: Keras' torch backend
  draws the masks of a `Dropout` built without a seed from that global generator
  (`torch.nn.functional.dropout`), not from the layer's `SeedGenerator`;
- `checkpoint.json`: the step (which is the data position: the data pipeline
  resumes at a step), the variable paths and shapes (checked on restore) and any
  caller metadata.

Folders are written under a hidden temporary name, synced to disk and renamed into
place (`atomic_files.atomic_path`), so a run killed while saving leaves the previous
checkpoints intact and never a half-written one that `CheckpointManager` would pick
up; old checkpoints are renamed aside before they are deleted, for the same reason.
A failed write (a full disk) raises `CheckpointWriteError` and keeps the previous
checkpoint. Only the last `keep_last` checkpoints are kept.
"""

import errno
import json
import os
import re
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_dualobj.training.atomic_files import atomic_path
from keras_dualobj.training.atomic_files import remove_leftovers
from keras_dualobj.training.atomic_files import remove_path
from keras_dualobj.utils.validation import check_int

STATE_FILE = "state.npz"
METADATA_FILE = "checkpoint.json"
FORMAT_VERSION = 1
_CHECKPOINT_NAME = re.compile(r"^step_(\d{8,})$")
# A checkpoint moved aside to be replaced or pruned (see `CheckpointManager.save`).
_ASIDE_NAME = re.compile(r"^\.step_(\d{8,})\.trash-\d+$")
_NAME_NUMBER = re.compile(r"_\d+$")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is kept."""


def checkpoint_name(step):
    """Folder name of the checkpoint taken after `step` updates.

    Example:
    >>> checkpoint_name(120)
    'step_00000120'
    """
    return f"step_{step:08d}"


def _variables(model):
    if model.optimizer is None:
        raise ValueError(
            "Checkpoints hold the optimizer state: compile the model first "
            "(model.compile(optimizer=...))."
        )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return list(model.variables), list(model.optimizer.variables)


def _global_generator_states():
    if keras.backend.backend() != "torch":
        return {}
    import torch

    states = {"torch_rng_cpu": torch.get_rng_state().numpy()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"torch_rng_cuda_{index}"] = state.cpu().numpy()
    return states


def restore_global_generator_states(arrays):
    """Sets the backend's global generators to states saved in a checkpoint.

    Only PyTorch has such state (see the module docstring). `fit()` itself draws
    from torch's global generator before the first step (symbolic build, the
    `DataLoader` iterator's base seed), so `train()` applies the saved states just
    before the first step, not when it restores the variables.

    Args:
        arrays: the `global_generator_states` dict of a checkpoint record.
    """
    if keras.backend.backend() != "torch" or "torch_rng_cpu" not in arrays:
        return
    import torch

    torch.set_rng_state(torch.from_numpy(arrays["torch_rng_cpu"]))
    cuda_states = sorted(name for name in arrays if name.startswith("torch_rng_cuda_"))
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.from_numpy(arrays[name]) for name in cuda_states])


def save_training_state(model, directory, step, metadata=None):
    """Writes model and optimizer variables plus metadata into `directory`.

    Args:
        model: a compiled Keras model.
        directory: folder to create (must not exist).
        step: int, updates applied so far.
        metadata: optional JSON-serialisable dict stored with the state.

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(64, 1, 2, 32, 48), seed=0)
    >>> model.compile(optimizer="auto")
    >>> _ = model.fit(np.random.randint(5, 64, (4, 16)), epochs=1, verbose=0)
    >>> path = save_training_state(model, tempfile.mkdtemp() + "/ckpt", step=1)
    >>> load_training_state(model, path)["step"]
    1
    """
    directory = Path(directory)
    model_variables, optimizer_variables = _variables(model)
    arrays = {}
    for prefix, variables in (("model", model_variables), ("optimizer", optimizer_variables)):
        for index, variable in enumerate(variables):
            arrays[f"{prefix}_{index:05d}"] = keras.ops.convert_to_numpy(variable.value)
    arrays.update(_global_generator_states())
    record = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "keras_backend": keras.backend.backend(),
        "model_variables": [[v.path, list(v.shape)] for v in model_variables],
        "optimizer_variables": [[v.path, list(v.shape)] for v in optimizer_variables],
        "metadata": metadata or {},
    }
    directory.mkdir(parents=True)
    _write_arrays(directory / STATE_FILE, arrays)
    # Written last: a folder holding checkpoint.json holds a complete state.npz.
    with open(directory / METADATA_FILE, "w") as file:
        file.write(json.dumps(record, indent=1))
        file.flush()
        os.fsync(file.fileno())
    return directory


def _write_arrays(path, arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
        file.flush()
        os.fsync(file.fileno())


def _layout_key(path, shape):
    # Keras makes automatic names unique per process ("matrix_muon_1",
    # "seed_generator_7"), so a restoring process may number them differently; the
    # order and shapes of the variables still have to agree.
    return ["/".join(_NAME_NUMBER.sub("", part) for part in path.split("/")), list(shape)]


def _check_layout(kind, saved, variables, directory):
    current = [[v.path, list(v.shape)] for v in variables]
    if [_layout_key(*entry) for entry in saved] != [_layout_key(*entry) for entry in current]:
        differences = [
            f"{a} vs {b}" for a, b in zip(saved, current) if a != b
        ] or [f"{len(saved)} saved vs {len(current)} now"]
        raise ValueError(
            f"Checkpoint {str(directory)!r} does not match this model's {kind} variables "
            f"(saved vs current: {differences[:3]}); restore it into a model built "
            "and compiled exactly as the one that wrote it."
        )


def load_training_state(model, directory, restore_global_generators=True):
    """Restores what `save_training_state` wrote; returns the stored record.

    The model must be built and compiled as the one that wrote the checkpoint
    (same architecture, same optimizer class and configuration); variable paths and
    shapes are checked.

    Args:
        model: the compiled model to restore into.
        directory: a checkpoint folder.
        restore_global_generators: also set the backend's global generator states
            now (see `restore_global_generator_states` for when to defer it).

    Returns:
        dict with `step`, `metadata`, the variable layout and
        `global_generator_states` (arrays; empty except under PyTorch).
    """
    directory = Path(directory)
    record = _read_record(directory)
    model_variables, optimizer_variables = _variables(model)
    _check_layout("model", record["model_variables"], model_variables, directory)
    _check_layout("optimizer", record["optimizer_variables"], optimizer_variables, directory)
    # Every array is read and checked before the first variable is assigned, so a
    # damaged checkpoint leaves the model as it was.
    arrays = _read_state(directory, {"model": model_variables, "optimizer": optimizer_variables})
    for prefix, variables in (("model", model_variables), ("optimizer", optimizer_variables)):
        for index, variable in enumerate(variables):
            variable.assign(arrays[f"{prefix}_{index:05d}"])
    record["global_generator_states"] = {
        name: value for name, value in arrays.items() if name.startswith("torch_rng_")
    }
    if restore_global_generators:
        restore_global_generator_states(record["global_generator_states"])
    return record


def _read_record(directory):
    """The checkpoint's `checkpoint.json`, checked for the keys a restore needs."""
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file():
        raise ValueError(
            f"{str(directory)!r} is not a checkpoint: {METADATA_FILE} is missing."
        )
    try:
        record = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{str(metadata_path)!r} is not a readable checkpoint record ({error}); "
            "it is damaged or was not written by keras_dualobj."
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(
            f"Checkpoint {str(directory)!r} has format {found!r}; this version reads "
            f"format {FORMAT_VERSION} (a keras_dualobj training checkpoint)."
        )
    missing = [
        key for key in ("step", "model_variables", "optimizer_variables") if key not in record
    ]
    if missing:
        raise ValueError(
            f"Checkpoint record {str(metadata_path)!r} lacks {missing}; it is damaged or "
            "was not written by keras_dualobj."
        )
    return record


def _read_state(directory, variables_by_prefix):
    """All arrays of `state.npz`, checked against the variables they restore."""
    path = directory / STATE_FILE
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ValueError(f"Checkpoint {str(directory)!r} has no {STATE_FILE}.") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{str(path)!r} cannot be read as a checkpoint state ({type(error).__name__}: "
            f"{error}); the file is truncated or damaged. Restore from another checkpoint."
        ) from None
    for prefix, variables in variables_by_prefix.items():
        for index, variable in enumerate(variables):
            key = f"{prefix}_{index:05d}"
            if key not in arrays or tuple(arrays[key].shape) != tuple(variable.shape):
                found = arrays[key].shape if key in arrays else "nothing"
                raise ValueError(
                    f"{str(path)!r} does not hold {prefix} variable {variable.path} with "
                    f"shape {tuple(variable.shape)} (found {found}); the state does not "
                    f"match its {METADATA_FILE}."
                )
    return arrays


class CheckpointManager:
    """Numbered checkpoints in one folder, keeping only the last `keep_last`.

    Args:
        directory: folder holding the `step_<8 digits>/` checkpoints.
        keep_last: int >= 1. Checkpoints kept on disk; older ones are deleted after
            each successful save.
        on_write: optional callable, given each checkpoint's folder before it is
            written (`train()` lists it in the run's manifest).

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_dualobj.models import DualBackbone, DualLM
    >>> model = DualLM(DualBackbone(64, 1, 2, 32, 48), seed=0)
    >>> model.compile(optimizer="auto")
    >>> manager = CheckpointManager(tempfile.mkdtemp(), keep_last=2)
    >>> for step in (10, 20, 30):
    ...     _ = manager.save(model, step)
    >>> [manager.step_of(path) for path in manager.checkpoints()]
    [20, 30]
    >>> manager.restore(model)["step"]
    30
    """

    def __init__(self, directory, keep_last=3, on_write=None):
        check_int("keep_last", keep_last, minimum=1)
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.on_write = on_write

    @staticmethod
    def step_of(path):
        """The step a checkpoint folder was taken at."""
        name = Path(path).name
        match = _CHECKPOINT_NAME.match(name) or _ASIDE_NAME.match(name)
        if match is None:
            raise ValueError(f"{str(path)!r} is not named like a checkpoint (step_<digits>).")
        return int(match.group(1))

    def checkpoints(self):
        """Complete checkpoint folders, oldest first.

        A complete checkpoint that a killed writer had moved aside to replace it
        with a newer state of the same step (and died before the new one was in
        place) still counts, under its hidden name, until the next save restores it.
        """
        if not self.directory.is_dir():
            return []
        complete = {}
        aside = {}
        for path in self.directory.iterdir():
            if not ((path / METADATA_FILE).is_file() and (path / STATE_FILE).is_file()):
                continue
            if _CHECKPOINT_NAME.match(path.name):
                complete[self.step_of(path)] = path
            elif _ASIDE_NAME.match(path.name):
                aside[self.step_of(path)] = path
        for step, path in aside.items():
            complete.setdefault(step, path)
        return [complete[step] for step in sorted(complete)]

    def latest(self):
        """The newest checkpoint folder, or `None`."""
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, model, step, metadata=None):
        """Saves a checkpoint for `step` and prunes old ones; returns its folder.

        Raises:
            CheckpointWriteError: the write failed (e.g. the disk is full); nothing
                was changed on disk, the previous checkpoints are intact.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        # What a killed writer left (the run lock makes us the only writer): a
        # checkpoint moved aside goes back in place, temporary folders go.
        for path in self.checkpoints():
            if _ASIDE_NAME.match(path.name):
                os.replace(path, self.directory / checkpoint_name(self.step_of(path)))
        remove_leftovers(self.directory)
        final = self.directory / checkpoint_name(step)
        if self.on_write is not None:
            self.on_write(final)
        try:
            # A resumed run may pass a saved step again: the new state replaces the old.
            with atomic_path(final) as staging:
                save_training_state(model, staging, step, metadata)
        except OSError as error:
            raise self._write_error(step, error) from error
        for old in self.checkpoints()[: -self.keep_last]:
            trash = old.parent / f".{old.name}.trash-{os.getpid()}"
            os.replace(old, trash)
            remove_path(trash)
        return final

    def _write_error(self, step, error):
        latest = self.latest()
        kept = (
            f"the last good checkpoint, {latest} (step {self.step_of(latest)}), is intact"
            if latest is not None
            else "there is no earlier checkpoint"
        )
        cause = "the disk is full" if error.errno == errno.ENOSPC else "the write failed"
        return CheckpointWriteError(
            error.errno,
            f"Could not save the checkpoint of step {step} in {str(self.directory)!r}: "
            f"{cause} ({error.strerror or error}); nothing was left half-written and "
            f"{kept}. Free some space (or fix the folder), then resume the run with "
            "--resume (resume=True).",
        )

    def restore(self, model, checkpoint=None, restore_global_generators=True):
        """Restores `checkpoint` (default: the latest); returns its record."""
        checkpoint = self.latest() if checkpoint is None else Path(checkpoint)
        if checkpoint is None:
            raise ValueError(f"No checkpoint to restore in {str(self.directory)!r}.")
        return load_training_state(model, checkpoint, restore_global_generators)
