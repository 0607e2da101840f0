"""Held-out evaluations during `train()`: a few batches periodically, the whole split
at the end (issue 26, item 5)."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dualobj.cli import main
from keras_dualobj.models import DualLM
from keras_dualobj.training import build_optimizer
from keras_dualobj.training import train
from keras_dualobj.training.evaluation_schedule import EVALUATION_BATCHES
from keras_dualobj.training.evaluation_schedule import default_eval_every
from keras_dualobj.training.evaluation_schedule import validation_epochs

from conftest import tiny_backbone

BATCH_SIZE, LENGTH, STEPS = 4, 16, 8


class CountTestBatches(keras.callbacks.Callback):
    """Held-out batches scored by each periodic evaluation inside `fit()`."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_test_begin(self, logs=None):
        self.calls.append(0)

    def on_test_batch_end(self, batch, logs=None):
        self.calls[-1] += 1


def _model():
    backbone = tiny_backbone(num_layers=1, intermediate_dim=48, max_sequence_length=64)
    model = DualLM(backbone, ar_fraction=0.5, seed=5)
    model.compile(optimizer=build_optimizer(model, learning_rate=3e-3, total_steps=STEPS))
    return model


def test_periodic_evaluations_score_a_few_batches_and_the_final_one_the_whole_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.integers(5, 48, (STEPS * BATCH_SIZE, LENGTH)).astype("int32")
    held_out = rng.integers(5, 48, (6 * BATCH_SIZE, LENGTH)).astype("int32")
    validation = tf.data.Dataset.from_tensor_slices(held_out).batch(BATCH_SIZE)
    counter = CountTestBatches()
    model = _model()
    result = train(
        model, lambda start: tf.data.Dataset.from_tensor_slices(rows).batch(BATCH_SIZE).skip(start),
        STEPS, tmp_path, tokens_per_step=BATCH_SIZE * LENGTH, validation_data=validation,
        log_every=2, eval_every=2, callbacks=[counter], stream=False,
    )
    # Steps 2, 4, 6 on the default few batches; step 8 (the last) only in the final one.
    assert counter.calls == [EVALUATION_BATCHES] * 3
    whole = model.evaluate(validation, return_dict=True, verbose=0)
    first = model.evaluate(validation, steps=EVALUATION_BATCHES, return_dict=True, verbose=0)
    assert result.evaluation["ar_loss"] == pytest.approx(whole["ar_loss"], rel=1e-5)
    assert result.evaluation["ar_loss"] != pytest.approx(first["ar_loss"], rel=1e-5)
    log = list(csv.DictReader(open(tmp_path / "logs" / "training_log.csv")))
    # One row per step: the final evaluation completes the last segment's row.
    assert [(int(row["step"]), bool(row["loss"]), bool(row["val_ar_loss"])) for row in log] == [
        (2, True, True), (4, True, True), (6, True, True), (8, True, True)]
    assert float(log[-1]["val_ar_loss"]) == pytest.approx(result.evaluation["ar_loss"], rel=1e-5)


def test_every_periodic_evaluation_scores_the_same_first_batches(tmp_path):
    # The curve compares the same rows at every point (Keras resets the held-out
    # iterator per evaluation): with the weights frozen, the losses are equal.
    rng = np.random.default_rng(1)
    rows = rng.integers(5, 48, (STEPS * BATCH_SIZE, LENGTH)).astype("int32")
    held_out = rng.integers(5, 48, (6 * BATCH_SIZE, LENGTH)).astype("int32")
    validation = tf.data.Dataset.from_tensor_slices(held_out).batch(BATCH_SIZE)
    model = DualLM(tiny_backbone(num_layers=1, intermediate_dim=48), ar_fraction=0.5, seed=5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    train(
        model, lambda start: tf.data.Dataset.from_tensor_slices(rows).batch(BATCH_SIZE).skip(start),
        STEPS, tmp_path, tokens_per_step=BATCH_SIZE * LENGTH, validation_data=validation,
        log_every=2, eval_every=2, stream=False,
    )
    first = model.evaluate(validation, steps=EVALUATION_BATCHES, return_dict=True, verbose=0)
    log = list(csv.DictReader(open(tmp_path / "logs" / "training_log.csv")))
    periodic = [float(row["val_ar_loss"]) for row in log[:-1]]
    assert periodic == pytest.approx([first["ar_loss"]] * 3, rel=1e-5)


def test_the_schedule_is_about_four_evaluations_per_run_without_the_last_step():
    assert default_eval_every(128, 10) == 30
    assert validation_epochs(120, 10, 30, final_is_periodic=False) == [3, 6, 9]
    assert validation_epochs(120, 10, 30, final_is_periodic=True) == [3, 6, 9, 12]


def test_eval_batches_flag_takes_a_count_or_all_and_names_a_bad_value(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--output-dir", "unused", "--eval-batches", "0"])
    assert "expected a whole number >= 1 or 'all'; received '0'" in capsys.readouterr().err
