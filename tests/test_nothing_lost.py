"""Nothing lost: atomic checkpoints and model files, Ctrl-C, one process per folder, full disk.

- A writer process killed (SIGKILL) at a random moment while it saves checkpoints in
  a loop leaves its newest complete checkpoint loadable, and no partial one listed;
  a crash simulated at *every* file-system call of a save shows the same, step by step.
- Ctrl-C (a real SIGINT to a `keras-dualobj train` process, sent once its training
  log reaches a given step) saves a checkpoint and exits 130 with how to resume;
  `--resume` ends with the weights of an uninterrupted run. The same for `study`.
- A second process on a run folder is refused, naming the owner's pid; a lock whose
  owner died is taken over with a message.
- A full disk (ENOSPC) while saving fails loudly and keeps the last good checkpoint
  and the previous `model.keras`.
"""

import errno
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dualobj.cli import main
from keras_dualobj.training import atomic_files
from keras_dualobj.training import checkpoints
from keras_dualobj.training import train
from keras_dualobj.training.atomic_files import atomic_write_text
from keras_dualobj.training.callbacks import read_log_rows
from keras_dualobj.training.checkpoints import CheckpointManager
from keras_dualobj.training.checkpoints import CheckpointWriteError
from keras_dualobj.training.checkpoints import load_training_state
from keras_dualobj.training.run_lock import LOCK_FILE
from keras_dualobj.training.run_lock import RunFolderInUseError
from keras_dualobj.training.run_lock import RunLock

from conftest import tiny_backbone
from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = one_thread_environment(
    KERAS_BACKEND=keras.backend.backend(),
    PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
)


class FakeModel:
    """What checkpoints read from a model: variables and an optimizer's variables."""

    def __init__(self, size):
        self.variables = [keras.Variable(np.zeros((size,), "float32"), name="weights")]
        self.optimizer = type("Optimizer", (), {"built": True})()
        self.optimizer.variables = [keras.Variable(np.zeros((3,), "float32"), name="moment")]

    def fill(self, value):
        for variable in self.variables + self.optimizer.variables:
            variable.assign(np.full(variable.shape, value, "float32"))

    def values(self):
        return {
            float(value)
            for variable in self.variables + self.optimizer.variables
            for value in np.unique(keras.ops.convert_to_numpy(variable.value))
        }


def _hidden(folder):
    return sorted(path.name for path in Path(folder).iterdir() if path.name.startswith("."))


def _check_every_checkpoint_loads(folder):
    """Each listed checkpoint loads and holds the state of its own step."""
    manager = CheckpointManager(folder)
    listed = manager.checkpoints()
    for path in listed:
        saved = json.loads((path / checkpoints.METADATA_FILE).read_text())
        model = FakeModel(saved["model_variables"][0][1][0])
        record = load_training_state(model, path)
        assert model.values() == {float(record["step"])} == {float(manager.step_of(path))}
    return listed


# --- Atomic writes ---------------------------------------------------------------


@pytest.mark.backend_independent
def test_a_failed_atomic_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "run.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_files.atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


WRITER = textwrap.dedent(
    """
    import sys
    from test_nothing_lost import FakeModel
    from keras_dualobj.training.checkpoints import CheckpointManager

    manager = CheckpointManager(sys.argv[1], keep_last=2)
    model = FakeModel(int(sys.argv[2]))
    step = 0
    while True:
        step += 1
        model.fill(step)
        print("saving", step, flush=True)
        manager.save(model, step)
        print("saved", step, flush=True)
    """
)


def test_a_writer_killed_at_a_random_moment_leaves_the_newest_complete_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    # ~8 MB per checkpoint: a save takes long enough for the kill to land inside one.
    size = 2_000_000
    writer = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(size)],
        cwd=REPO_ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in writer.stdout:
            if line.strip() == "saved 3":
                break
        else:
            pytest.fail("the writer stopped early: " + writer.stderr.read())
        time.sleep(random.Random(16).uniform(0.0, 0.4))
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    listed = _check_every_checkpoint_loads(folder)
    steps = [CheckpointManager.step_of(path) for path in listed]
    assert steps and steps[-1] >= 3 and len(steps) <= 2
    # Whatever the kill left (a hidden partial folder) is never listed, and the next
    # save clears it.
    model = FakeModel(size)
    model.fill(steps[-1] + 1)
    CheckpointManager(folder, keep_last=2).save(model, steps[-1] + 1)
    assert _hidden(folder) == []
    assert [CheckpointManager.step_of(p) for p in _check_every_checkpoint_loads(folder)] == [
        steps[-1], steps[-1] + 1
    ]


class Killed(BaseException):
    """The process dies here: nothing after it runs, no clean-up either."""


@pytest.mark.parametrize("new_step", [2, 1], ids=["next-step", "same-step-again"])
def test_a_crash_at_every_point_of_a_save_keeps_a_loadable_checkpoint(tmp_path, monkeypatch, new_step):
    """Kills the save at its 1st, 2nd, ... file-system call until one save completes."""
    fatal = [(os, "replace"), (os, "fsync"), (checkpoints, "_write_arrays"),
             (atomic_files, "remove_path"), (checkpoints, "remove_path")]

    def half_written(path, arrays):
        Path(path).write_bytes(b"PK\x03\x04" + bytes(64))
        raise Killed

    crash_points, leftovers_seen = 0, 0
    for crash_at in range(1, 100):
        folder = tmp_path / f"crash_{crash_at}"
        model = FakeModel(100)
        model.fill(1)
        CheckpointManager(folder, keep_last=1).save(model, 1)
        calls = {"count": 0, "dead": False}

        def deadly(function, name):
            def wrapper(*args, **kwargs):
                calls["count"] += 1
                if calls["dead"] or calls["count"] == crash_at:
                    calls["dead"] = True
                    if name == "_write_arrays":
                        half_written(*args)
                    raise Killed
                return function(*args, **kwargs)

            return wrapper

        model.fill(new_step * 10)
        with monkeypatch.context() as patch:
            for module, name in fatal:
                patch.setattr(module, name, deadly(getattr(module, name), name))
            try:
                CheckpointManager(folder, keep_last=1).save(model, new_step)
                completed = True
            except Killed:
                completed = False
        listed = CheckpointManager(folder).checkpoints()
        assert listed, f"no checkpoint left after a crash at call {crash_at}"
        latest = listed[-1]
        restored = FakeModel(100)
        record = load_training_state(restored, latest)
        assert record["step"] in (1, new_step)
        # The state matches its step: the old state (1.0) or the whole new one.
        allowed = {1: [{1.0}], new_step: [{float(new_step * 10)}]}
        if new_step == 1:
            allowed = {1: [{1.0}, {10.0}]}
        assert restored.values() in allowed[record["step"]]
        leftovers_seen += bool(_hidden(folder))
        # The next save (the resumed run) tidies up and leaves exactly one checkpoint.
        model.fill(30)
        CheckpointManager(folder, keep_last=1).save(model, 3)
        assert _hidden(folder) == []
        assert [p.name for p in CheckpointManager(folder).checkpoints()] == ["step_00000003"]
        if completed:
            break
        crash_points += 1
    assert completed and crash_points >= 5 and leftovers_seen >= 1


# --- Full disk ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_training():
    import tensorflow as tf

    from keras_dualobj.models import DualLM

    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(vocabulary_size=64, intermediate_dim=48, max_sequence_length=2048)
    model = DualLM(backbone, seed=0)
    model.compile(optimizer="adamw")
    rows = np.random.default_rng(0).integers(5, 64, (32, 16)).astype("int32")

    def run(output_dir, resume=False):
        return train(
            model, lambda start: tf.data.Dataset.from_tensor_slices(rows).batch(4).skip(start),
            total_steps=8, output_dir=output_dir, tokens_per_step=64, log_every=4,
            eval_every=4, checkpoint_every=4,
            resume=resume, stream=False,
        )

    return model, run


def test_a_full_disk_fails_loudly_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, tiny_training):
    model, run = tiny_training
    real_write = checkpoints._write_arrays
    writes = []

    def disk_fills_up(path, arrays):
        writes.append(path)
        if len(writes) == 2:  # the step-8 checkpoint: half of it fits
            Path(path).write_bytes(b"PK\x03\x04" + bytes(1000))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, arrays)

    monkeypatch.setattr(checkpoints, "_write_arrays", disk_fills_up)
    with pytest.raises(CheckpointWriteError) as raised:
        run(tmp_path / "run")
    message = str(raised.value)
    assert raised.value.errno == errno.ENOSPC
    assert "the disk is full" in message and "step 8" in message
    assert "step_00000004" in message and "--resume" in message
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000004"]
    assert not (tmp_path / "run" / "model.keras").exists()
    monkeypatch.setattr(checkpoints, "_write_arrays", real_write)
    assert CheckpointManager(folder).restore(model)["step"] == 4

    # Space freed: the run resumes and finishes; then a full disk while saving
    # model.keras keeps the previous model file byte for byte.
    assert run(tmp_path / "run", resume=True).start_step == 4
    model_file = tmp_path / "run" / "model.keras"
    before = hashlib.sha256(model_file.read_bytes()).hexdigest()

    def save_fills_up(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model, "save", save_fills_up)
    with pytest.raises(OSError) as raised:
        run(tmp_path / "run", resume=True)
    assert raised.value.errno == errno.ENOSPC
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == before
    assert _hidden(tmp_path / "run") == []
    assert keras.saving.load_model(model_file).count_params() == model.count_params()


# --- One process per run folder ------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
    run_lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_lock)
    run_lock.RunLock(sys.argv[2]).acquire()
    print("held", flush=True)
    sys.stdin.read()
    """
)


def test_a_second_process_is_refused_and_a_dead_owners_lock_is_taken_over(tmp_path, capsys):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(REPO_ROOT / "keras_dualobj/training/run_lock.py"),
         str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENVIRONMENT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        owner = f"pid {holder.pid}"
        with pytest.raises(RunFolderInUseError, match=owner):
            RunLock(folder).acquire()
        with pytest.raises(RunFolderInUseError, match=owner):
            train(None, None, 8, folder, tokens_per_step=64)
        assert main(["train", "--preset", "tiny", "--source", "builtin", "--output-dir", str(folder)]) == 2
        error = capsys.readouterr().err
        assert owner in error and "in use by another process" in error
        assert main(["study", "--quick", "--preset", "tiny", "--output", str(folder)]) == 2
        assert owner in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert f'"pid": {holder.pid}' in (folder / LOCK_FILE).read_text()  # left behind
    notices = io.StringIO()
    with RunLock(folder, stream=notices):
        assert f'"pid": {os.getpid()}' in (folder / LOCK_FILE).read_text()
    assert "Taking over the lock" in notices.getvalue() and f"pid {holder.pid}" in notices.getvalue()
    assert not (folder / LOCK_FILE).exists()


# --- Ctrl-C ------------------------------------------------------------------------

# 256 steps of 8 rows x 32 tokens on the built-in corpus, logged every 4 steps.
CLI_RUN = [
    "train", "--preset", "tiny", "--source", "builtin", "--sequence-length", "32",
    "--batch-size", "8", "--token-budget", "65536", "--log-every", "4", "--eval-every", "64",
    "--eval-batches", "1", "--sample-length", "4", "--prompt-length", "4",
]
SIGNAL_AT_STEP = 12


def _logged_step(log_dir):
    steps = []
    for row in read_log_rows(log_dir):
        try:
            steps.append(int(row["step"]))
        except (TypeError, ValueError):
            pass  # a row being written
    return max(steps, default=0)


@pytest.mark.end_to_end("torch")
def test_ctrl_c_during_train_saves_and_resume_ends_with_the_uninterrupted_weights(tmp_path, capsys):
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_dualobj", *CLI_RUN, "--output-dir", str(interrupted)],
        cwd=REPO_ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while _logged_step(interrupted / "logs") < SIGNAL_AT_STEP:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    output, error = process.communicate(timeout=600)
    assert process.returncode == 130, output + error
    stopped = int(re.search(r"Interrupted at step (\d+); saved checkpoint", error).group(1))
    assert SIGNAL_AT_STEP <= stopped < 256 and stopped % 4 == 0, error
    assert f"keras-dualobj train --output-dir {interrupted} --resume" in error
    latest = CheckpointManager(interrupted / "checkpoints").latest()
    assert CheckpointManager.step_of(latest) == stopped
    assert not (interrupted / "model.keras").exists() and not (interrupted / LOCK_FILE).exists()
    assert _logged_step(interrupted / "logs") == stopped  # the segment's log row is there

    assert main(CLI_RUN + ["--output-dir", str(interrupted), "--resume"]) == 0
    assert f"step {stopped})" in capsys.readouterr().out  # "Resuming from ... (step N)"
    straight = tmp_path / "straight"
    assert main(CLI_RUN + ["--output-dir", str(straight)]) == 0
    expected = dict(np.load(straight / "checkpoints/step_00000256/state.npz"))
    actual = dict(np.load(interrupted / "checkpoints/step_00000256/state.npz"))
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.end_to_end("torch")
def test_ctrl_c_during_a_study_saves_the_cell_and_the_same_command_resumes_it(tmp_path, monkeypatch, capsys):
    from keras_dualobj.study.progress import StudyProgress

    arguments = [
        "study", "--ar-fractions", "1/2", "--repetitions", "1", "--token-budget", "4096",
        "--preset", "tiny", "--source", "builtin", "--sequence-length", "32",
        "--batch-size", "8", "--evaluations", "2", "--evaluation-batches", "1",
        "--elbo-samples", "1", "--output", str(tmp_path / "study"),
    ]
    counted_step = StudyProgress.step
    handler_before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c_at_step_5(self):
        counted_step(self)
        if self.done_steps == 5:
            os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, to this process

    monkeypatch.setattr(StudyProgress, "step", press_ctrl_c_at_step_5)
    assert main(arguments) == 130
    error = capsys.readouterr().err
    stopped = int(re.search(r"Interrupted at step (\d+); saved checkpoint", error).group(1))
    assert 5 <= stopped < 16 and "run the same command again to resume" in error
    cell = tmp_path / "study" / "cells" / "alpha0.5_R1"
    assert not (cell / "result.json").exists()
    assert CheckpointManager.step_of(CheckpointManager(cell / "checkpoints").latest()) == stopped
    # The command put the previous Ctrl-C handler back.
    assert signal.getsignal(signal.SIGINT) is handler_before

    monkeypatch.undo()
    assert main(arguments) == 0
    assert (cell / "result.json").is_file()
    steps = [int(row["step"]) for row in read_log_rows(cell / "logs")]
    assert steps == sorted(set(steps)) and steps[-1] == 16
