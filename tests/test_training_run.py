"""Run operations: NaN stop, output-directory guard, logs, progress, checkpoints."""

import glob
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dualobj.models import DualLM
from keras_dualobj.training import CheckpointManager
from keras_dualobj.training import TrainingDivergedError
from keras_dualobj.training import build_optimizer
from keras_dualobj.training import check_output_dir
from keras_dualobj.training import load_training_state
from keras_dualobj.training import train

from conftest import tiny_backbone

BATCH_SIZE, LENGTH = 4, 16


def _model(ar_fraction=0.5):
    backbone = tiny_backbone(num_layers=1, intermediate_dim=48, max_sequence_length=2048)
    model = DualLM(backbone, ar_fraction=ar_fraction, seed=5)
    model.compile(optimizer=build_optimizer(model, learning_rate=3e-3, total_steps=12))
    return model


def _data(num_steps=12):
    rows = np.random.default_rng(0).integers(5, 48, (num_steps * BATCH_SIZE, LENGTH))
    rows = rows.astype("int32")

    def dataset(start_step):
        return tf.data.Dataset.from_tensor_slices(rows).batch(BATCH_SIZE).skip(start_step)

    return dataset, tf.data.Dataset.from_tensor_slices(rows[:8]).batch(BATCH_SIZE)


class PoisonWeightsAfterStep(keras.callbacks.Callback):
    """Writes NaN into the output head after `step` updates."""

    def __init__(self, step):
        super().__init__()
        self.poison_step, self.steps = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.poison_step:
            if keras.backend.backend() == "jax":
                self.model.jax_state_sync()  # variables are stale inside a JAX epoch
            head = self.model.backbone.token_embedding.reverse_embeddings
            head.assign(np.full(head.shape, np.nan, "float32"))


def test_nan_loss_stops_the_run_naming_the_step_and_last_good_checkpoint(tmp_path):
    dataset, _ = _data()
    with pytest.raises(TrainingDivergedError) as error:
        train(
            _model(), dataset, 12, tmp_path, tokens_per_step=BATCH_SIZE * LENGTH,
            log_every=2, checkpoint_every=4, eval_every=4,
            callbacks=[PoisonWeightsAfterStep(6)], stream=False,
        )
    message = str(error.value)
    assert "at step 7" in message
    assert "step_00000004" in message and "(step 4)" in message
    assert "nan" in message
    # Step 6 ended a segment cleanly (checkpoint_every=4, so nothing saved there); the
    # segment holding step 7 was not saved, nor any later one; no final model.
    manager = CheckpointManager(tmp_path / "checkpoints")
    assert [manager.step_of(p) for p in manager.checkpoints()] == [4]
    assert not (tmp_path / "model.keras").exists()
    restored = _model()
    load_training_state(restored, manager.latest())
    for variable in restored.weights:
        assert np.isfinite(keras.ops.convert_to_numpy(variable)).all()


def test_run_writes_progress_csv_tensorboard_checkpoints_and_model(tmp_path):
    dataset, validation = _data(num_steps=10)
    stream = io.StringIO()
    result = train(
        _model(), dataset, 10, tmp_path, tokens_per_step=BATCH_SIZE * LENGTH,
        validation_data=validation, log_every=2, eval_every=4, checkpoint_every=4,
        keep_checkpoints=2, run_config={"name": "logs"}, stream=stream,
    )
    output = stream.getvalue()
    # Progress lines at each segment end, with tokens/s and both losses.
    progress = [line for line in output.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["2/10", "4/10", "6/10", "8/10", "10/10"]
    assert all("tok/s" in line and " ar " in line and " md " in line for line in progress)
    assert "held-out at step 4 (first 2 batches): AR loss" in output and "MD loss (ELBO)" in output
    assert "held-out at step 10 (whole split): AR loss" in output
    # Held-out losses at the end, both objectives.
    assert set(result.evaluation) >= {"ar_loss", "md_loss"}
    assert all(np.isfinite(result.evaluation[name]) for name in ("ar_loss", "md_loss"))
    assert result.tokens_per_second > 0
    # CSV: one row per segment, by step; the final evaluation completes the last row.
    rows = list(__import__("csv").DictReader(open(tmp_path / "logs" / "training_log.csv")))
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8, 10]
    assert [int(row["tokens"]) for row in rows[:2]] == [2 * 64, 4 * 64]
    assert rows[1]["val_ar_loss"] and not rows[0]["val_ar_loss"]
    assert float(rows[-1]["val_md_loss"]) == pytest.approx(result.evaluation["md_loss"])
    assert all(float(row["learning_rate"]) > 0 for row in rows)
    assert rows[-1]["loss"] and rows[-1]["val_ar_loss"]  # the last segment, then the final score
    # TensorBoard scalars, indexed by step.
    tags = {}
    for path in glob.glob(str(tmp_path / "logs" / "tensorboard" / "*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags["train/loss"] == [2, 4, 6, 8, 10]
    assert tags["validation/md_loss"] == [4, 8, 10]
    # Last two checkpoints, run.json and the final model.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_00000008", "step_00000010"]
    assert json.loads((tmp_path / "run.json").read_text())["config"] == {"name": "logs"}
    assert keras.saving.load_model(result.model_path).backbone.num_layers == 1


def test_output_directory_holding_another_run_is_refused(tmp_path):
    dataset, _ = _data(num_steps=2)
    train(_model(), dataset, 2, tmp_path, tokens_per_step=64, log_every=2,
          run_config={"seed": 1}, stream=False)
    for config in ({"seed": 1}, {"seed": 2}):
        with pytest.raises(ValueError, match="--resume.*--overwrite"):
            check_output_dir(tmp_path, config)
    with pytest.raises(ValueError, match=r"seed: 1 in the directory vs 2 now"):
        check_output_dir(tmp_path, {"seed": 2}, resume=True)
    with pytest.raises(ValueError, match="at most one"):
        check_output_dir(tmp_path, {"seed": 1}, resume=True, overwrite=True)
    assert check_output_dir(tmp_path, {"seed": 1}, resume=True) == "resume"
    # train() itself refuses too, before touching anything.
    with pytest.raises(ValueError, match="already holds a training run"):
        train(_model(), dataset, 2, tmp_path, tokens_per_step=64, log_every=2,
              run_config={"seed": 2}, stream=False)
    # --overwrite deletes only what a run writes.
    (tmp_path / "notes.txt").write_text("mine")
    assert check_output_dir(tmp_path, {"seed": 2}, overwrite=True) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # A non-empty folder that holds no run is not ours.
    with pytest.raises(ValueError, match="holds no training run"):
        check_output_dir(tmp_path, {"seed": 2})


def test_resume_of_a_finished_run_only_evaluates_and_saves(tmp_path):
    dataset, validation = _data(num_steps=4)
    train(_model(), dataset, 4, tmp_path, tokens_per_step=64, log_every=2, stream=False)
    stream = io.StringIO()
    result = train(_model(), dataset, 4, tmp_path, tokens_per_step=64, log_every=2,
                   validation_data=validation, resume=True, stream=stream)
    assert result.start_step == 4
    assert "Resuming from" in stream.getvalue()
    assert not [line for line in stream.getvalue().splitlines() if line.startswith("step ")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"log_every": 4, "eval_every": 6}, "eval_every.*multiple of `log_every`"),
        ({"log_every": 4, "checkpoint_every": 2}, "checkpoint_every.*multiple"),
        ({"total_steps": 0}, "total_steps"),
        ({"keep_checkpoints": 0}, "keep_last"),
    ],
)
def test_train_rejects_bad_arguments(tmp_path, kwargs, message):
    dataset, _ = _data()
    arguments = {"total_steps": 8, "tokens_per_step": 64, "stream": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        train(_model(), dataset, output_dir=tmp_path, **arguments)


def test_checkpoint_manager_keeps_last_n_and_ignores_partial_writes(tmp_path):
    model = _model()
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (2, 4, 6):
        manager.save(model, step, {"tokens_seen": step * 64})
    (tmp_path / ".step_00000008.partial-123").mkdir()  # a save killed midway
    assert [manager.step_of(p) for p in manager.checkpoints()] == [4, 6]
    record = manager.restore(model)
    assert record["step"] == 6 and record["metadata"] == {"tokens_seen": 384}
    other = DualLM(tiny_backbone(num_layers=1, max_sequence_length=2048), seed=5)  # FFN 64, not 48
    other.compile(optimizer=build_optimizer(other))
    with pytest.raises(ValueError, match="does not match this model's model variables"):
        manager.restore(other)
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_training_state(model, tmp_path)
