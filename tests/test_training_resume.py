"""Kill-and-resume: a run killed mid-training and resumed ends with the same weights.

Each run is a separate Python process (the backend of this test session), as a
real interrupted job would be. The killed run dies by SIGKILL from inside a
callback at a step between two checkpoints, so no cleanup code runs; the resumed
run restarts from the last checkpoint and replays the lost steps.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dualobj.training.checkpoints import METADATA_FILE
from keras_dualobj.training.checkpoints import STATE_FILE
from keras_dualobj.training.checkpoints import _layout_key

from conftest import tiny_backbone
from conftest import one_thread_environment

REPO_ROOT = Path(__file__).resolve().parents[1]

TOTAL_STEPS = 22


def run_tiny_training(output_dir, kill_at_step=0, resume=False, optimizer="muon", stream=None):
    """A tiny dual run on synthetic packed rows with document ids.

    Rows are reshuffled every epoch by a seeded permutation, so the batch of step s
    is a pure function of s. With `kill_at_step`, the process SIGKILLs itself at the
    end of that step.
    """
    import tensorflow as tf

    from keras_dualobj.models import DualLM
    from keras_dualobj.training import build_optimizer
    from keras_dualobj.training import train

    batch_size, length, num_rows = 4, 24, 16
    rng = np.random.default_rng(7)
    tokens = rng.integers(16, 64, (num_rows, length)).astype("int32")
    tokens[:, 0] = 1
    documents = np.cumsum(rng.random((num_rows, length)) < 0.1, axis=1).astype("int32")
    order = np.concatenate([np.random.default_rng(e).permutation(num_rows) for e in range(8)])
    step_rows = order[: TOTAL_STEPS * batch_size].reshape(TOTAL_STEPS, batch_size)

    def dataset(start_step):
        rows = step_rows[start_step:]
        return tf.data.Dataset.from_tensor_slices(
            {"token_ids": tokens[rows], "document_ids": documents[rows]}
        )

    keras.utils.set_random_seed(3)
    backbone = tiny_backbone(
        vocabulary_size=64, intermediate_dim=48, dropout=0.1, max_sequence_length=2048,
    )
    model = DualLM(backbone, ar_fraction=0.5, seed=11)
    model.compile(
        optimizer=build_optimizer(
            model, optimizer=optimizer, learning_rate=3e-3, total_steps=TOTAL_STEPS,
            warmup_fraction=0.1, clip_norm=1.0,
        )
    )

    class KillAtStep(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)

    validation = tf.data.Dataset.from_tensor_slices(
        {"token_ids": tokens[:8], "document_ids": documents[:8]}
    ).batch(4)
    return train(
        model, dataset, TOTAL_STEPS, output_dir, tokens_per_step=batch_size * length,
        validation_data=validation, log_every=4, eval_every=8, checkpoint_every=8,
        keep_checkpoints=2, resume=resume, run_config={"seed": 3, "optimizer": optimizer},
        callbacks=[KillAtStep()], stream=stream,
    )


RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    from test_training_resume import run_tiny_training

    output_dir, kill_at_step, resume, optimizer = sys.argv[1:5]
    result = run_tiny_training(output_dir, int(kill_at_step), resume == "1", optimizer, sys.stdout)
    print("FINAL", result.start_step, result.total_steps)
    """
)


def _run(output_dir, kill_at_step=0, resume=False, optimizer="muon"):
    script = Path(output_dir).parent / "run_script.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(RUN_SCRIPT)
    environment = one_thread_environment(
        KERAS_BACKEND=keras.backend.backend(),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
    )
    return subprocess.run(
        [sys.executable, str(script), str(output_dir), str(kill_at_step), "1" if resume else "0", optimizer],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _final_state(output_dir):
    checkpoint = Path(output_dir) / "checkpoints" / "step_00000022"
    with np.load(checkpoint / STATE_FILE) as arrays:
        state = dict(arrays)
    return state, json.loads((checkpoint / METADATA_FILE).read_text())


@pytest.mark.end_to_end("torch")
@pytest.mark.parametrize("optimizer", ["muon"])
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, optimizer):
    # The uninterrupted reference runs in this process (same code, same seeds).
    straight = run_tiny_training(tmp_path / "a" / "straight", optimizer=optimizer, stream=False)
    assert straight.start_step == 0 and straight.total_steps == TOTAL_STEPS

    killed_dir = tmp_path / "b" / "killed"
    killed = _run(killed_dir, kill_at_step=13, optimizer=optimizer)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    saved = sorted(p.name for p in (killed_dir / "checkpoints").iterdir())
    assert saved == ["step_00000008"], saved  # killed between checkpoints 8 and 16

    resumed = _run(killed_dir, resume=True, optimizer=optimizer)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming from" in resumed.stdout and "FINAL 8 22" in resumed.stdout

    expected, expected_record = _final_state(tmp_path / "a" / "straight")
    actual, actual_record = _final_state(killed_dir)
    # Same variables in the same order (automatic names may be numbered differently
    # in this test process, e.g. "matrix_muon_19", hence the normalised layout).
    for kind in ("model_variables", "optimizer_variables"):
        assert [_layout_key(*entry) for entry in actual_record[kind]] == [
            _layout_key(*entry) for entry in expected_record[kind]
        ]
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # The seed-generator states (row split, masks, dropout) were carried over: the
    # resumed run ends with exactly the uninterrupted run's states, which moved since
    # the checkpoint at step 16 (a reset or re-seeded generator would not match).
    seed_keys = [
        f"model_{index:05d}"
        for index, (path, _) in enumerate(expected_record["model_variables"])
        if "seed_generator_state" in path
    ]
    assert len(seed_keys) >= 2  # the training seed and the ELBO seed at least
    with np.load(killed_dir / "checkpoints" / "step_00000016" / STATE_FILE) as arrays:
        at_step_16 = {key: arrays[key] for key in seed_keys}
    moved = 0
    for key in seed_keys:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
        moved += not np.array_equal(actual[key], at_step_16[key])
    assert moved >= 1, "no seed generator advanced between steps 16 and 22"
    # Logs read as one run: no step appears twice and the steps run up to the end.
    log_lines = (killed_dir / "logs" / "training_log.csv").read_text().splitlines()
    steps = [int(line.split(",")[0]) for line in log_lines[1:]]
    training_steps = steps[:-1]
    assert training_steps == sorted(set(training_steps)) and steps[-1] == 22
    # Only the last `keep_checkpoints` checkpoints stay on disk.
    remaining = sorted(p.name for p in (killed_dir / "checkpoints").iterdir())
    assert remaining == ["step_00000016", "step_00000022"]
