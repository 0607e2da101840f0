"""Soak: a 2,000-step run crashed and resumed three times ends where an unbroken one does.

(400 steps under PyTorch: see `TOTAL_STEPS`.)

A test-sized model (2 layers, width 32, rows of 32 tokens, 2 rows per step) keeps
each step cheap, so the run can be long: 2,000 updates with a held-out evaluation and
a checkpoint every 100 steps. The crashed run dies three times at seeded random
steps, each time by an exception raised from a callback (the in-process stand-in for
a crash: nothing after it runs, no checkpoint is written), and each restart resumes
from the latest checkpoint, replaying the steps lost since.

To fit the test budget, one model object serves every run: a restart restores every
variable (weights, optimizer state, random-generator states) from the checkpoint, and
the uninterrupted reference starts from a snapshot of the initial state, so the five
runs share one compilation instead of paying five (XLA compiles dominated a first
version: ~110 s on JAX). Restoring into a freshly built model in a new process is
what `test_training_resume.py` (SIGKILL) and `test_nothing_lost.py` (Ctrl-C) test.
"""

import numpy as np
import keras
import pytest
import tensorflow as tf

from keras_dualobj.models import DualLM
from keras_dualobj.training import build_optimizer
from keras_dualobj.training import train
from keras_dualobj.training.callbacks import read_log_rows
from keras_dualobj.training.checkpoints import CheckpointManager
from keras_dualobj.training.checkpoints import load_training_state
from keras_dualobj.training.checkpoints import save_training_state

from conftest import tiny_backbone

# Keras' PyTorch backend runs eagerly: a step of this model cost ~0.4 s there on the
# shared 2-core CI host (vs ~2 ms compiled on JAX), so torch runs a shorter soak.
TOTAL_STEPS = 400 if keras.backend.backend() == "torch" else 2000
EVERY = 100
BATCH_SIZE, LENGTH, VOCABULARY = 2, 32, 48
CRASHES = 3


class Crash(Exception):
    """Stands for the process dying mid-run."""


class CrashAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.crash_step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.crash_step:
            raise Crash(self.crash_step)


def _data():
    rng = np.random.default_rng(5)
    num_rows = 64
    tokens = rng.integers(5, VOCABULARY, (num_rows, LENGTH)).astype("int32")
    tokens[:, 0] = 1
    documents = np.cumsum(rng.random((num_rows, LENGTH)) < 0.05, axis=1).astype("int32")
    # Each step's rows are a pure function of the step (reshuffled per epoch).
    epochs = -(-TOTAL_STEPS * BATCH_SIZE // num_rows)
    order = np.concatenate([np.random.default_rng(e).permutation(num_rows) for e in range(epochs)])
    step_rows = order[: TOTAL_STEPS * BATCH_SIZE].reshape(TOTAL_STEPS, BATCH_SIZE)

    def dataset(start_step):
        rows = step_rows[start_step:]
        return tf.data.Dataset.from_tensor_slices(
            {"token_ids": tokens[rows], "document_ids": documents[rows]}
        )

    validation = tf.data.Dataset.from_tensor_slices(
        {"token_ids": tokens[:4], "document_ids": documents[:4]}
    ).batch(4)
    return dataset, validation


def _model():
    keras.utils.set_random_seed(9)
    backbone = tiny_backbone(
        vocabulary_size=VOCABULARY, intermediate_dim=48, max_sequence_length=LENGTH,
    )
    model = DualLM(backbone, ar_fraction=0.5, seed=4)
    model.compile(
        optimizer=build_optimizer(
            model, optimizer="adamw", learning_rate=3e-3, total_steps=TOTAL_STEPS,
            warmup_fraction=0.05,
        )
    )
    return model


def _run(model, output_dir, data, crash_step=None, resume=False):
    dataset, validation = data
    callbacks = [] if crash_step is None else [CrashAtStep(crash_step)]
    return train(
        model, dataset, TOTAL_STEPS, output_dir, tokens_per_step=BATCH_SIZE * LENGTH,
        validation_data=validation, log_every=EVERY, eval_every=EVERY,
        checkpoint_every=EVERY, keep_checkpoints=2, resume=resume,
        run_config={"soak": 1}, callbacks=callbacks, stream=False,
    )


def _state(output_dir):
    manager = CheckpointManager(output_dir / "checkpoints")
    latest = manager.latest()
    assert manager.step_of(latest) == TOTAL_STEPS
    with np.load(latest / "state.npz") as arrays:
        return dict(arrays)


@pytest.mark.end_to_end("tensorflow")
def test_three_crashes_and_resumes_end_with_the_uninterrupted_weights(tmp_path):
    data = _data()
    model = _model()
    initial = save_training_state(model, tmp_path / "initial", step=0)
    # Three crash steps, seeded, none on a checkpoint (so steps are lost and replayed).
    rng = np.random.default_rng(2026)
    crash_steps = sorted(rng.choice(
        [s for s in range(EVERY + 1, TOTAL_STEPS) if s % EVERY], CRASHES, replace=False
    ).tolist())
    crashed_dir = tmp_path / "crashed"
    resumed_from = []
    for number, crash_step in enumerate(crash_steps):
        try:
            _run(model, crashed_dir, data, crash_step=crash_step, resume=number > 0)
        except Crash as crash:
            assert crash.args == (crash_step,)
        else:
            raise AssertionError(f"the run did not crash at step {crash_step}")
        latest = CheckpointManager(crashed_dir / "checkpoints").latest()
        resumed_from.append(CheckpointManager.step_of(latest))
        assert resumed_from[-1] == crash_step // EVERY * EVERY
    final = _run(model, crashed_dir, data, resume=True)
    assert final.start_step == resumed_from[-1] and final.total_steps == TOTAL_STEPS

    load_training_state(model, initial)
    straight = _run(model, tmp_path / "straight", data)
    assert straight.start_step == 0
    expected, actual = _state(tmp_path / "straight"), _state(crashed_dir)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)

    # The crashed run's log reads as one run: every 100th step once, each evaluated.
    rows = read_log_rows(crashed_dir / "logs")
    assert [int(row["step"]) for row in rows] == list(range(EVERY, TOTAL_STEPS + 1, EVERY))
    assert all(row["val_ar_loss"] for row in rows)
    # The run learned (equality is not of two untrained models): below the uniform
    # guess and below its own first evaluation.
    first = float(rows[0]["val_ar_loss"])
    assert final.evaluation["ar_loss"] < min(first, np.log(VOCABULARY))
    straight_rows = read_log_rows(tmp_path / "straight" / "logs")
    np.testing.assert_allclose(
        [float(row["val_ar_loss"]) for row in rows],
        [float(row["val_ar_loss"]) for row in straight_rows],
        rtol=1e-4,
    )
