"""
Title: The training recipe: Muon + warmup-stable-decay, presets, checkpoints and resume
Author: keras-dualobj developers
Date created: 2026/11/27
Last modified: 2026/11/27
Description: Reproduce the paper's optimiser set-up and run long jobs that survive being killed.
Accelerator: None
"""

"""
## Introduction

The paper (Samuel & Charpentier, [arXiv 2512.14549](https://arxiv.org/abs/2512.14549))
trains its dual-objective models with **Muon** (learning rate 7e-3, momentum 0.95,
Nesterov, 5 Newton–Schulz steps, weight decay 0.1) on the weight matrices and **AdamW**
on the embedding, the output head and the 1-D weights, under a **warmup-stable-decay**
learning rate that decays linearly to 0 over the last 25% of training.

This guide shows that recipe in `keras_dualobj.training`, the model presets, and a
training run that writes checkpoints, logs and a final model, is killed half-way and is
resumed to end with exactly the weights of an uninterrupted run. The same machinery is
behind the `keras-dualobj train` command. It runs on any backend in well under a minute
on a CPU.
"""

"""
## Setup
"""

import os
import tempfile

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import numpy as np
from keras import ops

from keras_dualobj.data import make_training_dataset, prepare_data
from keras_dualobj.models import DualLM
from keras_dualobj.models.presets import get_preset, parameter_counts, preset_names
from keras_dualobj.training import (
    WarmupStableDecay,
    build_optimizer,
    muon_matrix_shapes,
    train,
)

"""
## Presets

A preset is an architecture plus the training defaults the `train` command uses. They
range from `tiny` (tests, seconds on a CPU) to `paper-470m`, the paper's 24 × 1024 model.
Parameter counts come from the configuration alone, so the 470M model is never built
here.
"""

for name in preset_names():
    counts = parameter_counts(get_preset(name)["backbone"])
    print(f"{name:>11}: {counts['total']:>12,} parameters, "
          f"{counts['non_embedding']:>12,} non-embedding")

"""
## Data

The built-in corpus (CPython's documentation) works offline; 12,288 unique tokens of
64-token rows, seen twice, is 24 steps of 16 rows.
"""

data = prepare_data("builtin", tokenizer="byte", sequence_length=64, batch_size=16,
                    unique_tokens=12_288, repetitions=2, seed=0)
total_steps = data.plan.total_steps

"""
## The optimiser recipe

`build_optimizer` returns a `MatrixMuon`: Keras' `keras.optimizers.Muon` applied to every
attention and feed-forward matrix, with AdamW for everything else. Stock Keras Muon uses
Muon only for 2-D variables, and our attention projections are 3-D `EinsumDense` kernels
(`[hidden, heads, head_dim]`), so it would train them with AdamW; `MatrixMuon`
orthogonalises each as the `[hidden, heads * head_dim]` matrix it is.

Learning rates transfer 1:1 from the reference implementation (Moonlight's Muon): both
scale the orthogonalised update by `0.2 * sqrt(max(rows, cols))`, which gives it about
AdamW's RMS, so one learning rate serves both halves; `build_optimizer` also sets the
reference's AdamW betas (0.9, 0.95), epsilon 1e-8 and weight decay 0.1.
"""


def make_model():
    keras.utils.set_random_seed(0)
    model = DualLM.from_preset("tiny", tokenizer=data.tokenizer, ar_fraction=0.5, seed=0)
    model.compile(optimizer=build_optimizer(model, learning_rate=1e-2,
                                            total_steps=total_steps, warmup_fraction=0.1))
    return model


model = make_model()
for path, (rows, cols) in list(muon_matrix_shapes(model).items())[:4]:
    print(f"Muon  {path:<45} as a {rows} x {cols} matrix")
adamw = [v.path for v in model.trainable_variables if not model.optimizer.uses_muon(v)]
print("AdamW", adamw)

"""
## Warmup-stable-decay

`WarmupStableDecay` is a serialisable `LearningRateSchedule`: a linear warm-up, a plateau
and a decay (linear, cosine or 1 − sqrt) to a final value, all as fractions of the run.
"""

schedule = WarmupStableDecay(7e-3, total_steps=1000, warmup_fraction=0.01,
                             decay_fraction=0.25)
for step in (0, 9, 500, 750, 875, 1000):
    print(f"step {step:>4}: learning rate {float(schedule(step)):.2e}")

"""
## A resumable training run

`train()` calls `fit()` in log segments and owns an output folder: `run.json` (the run's
configuration), the last N checkpoints (model variables including the random-generator
states, optimizer state including the schedule position, and the data position, which is
the step), CSV and TensorBoard logs by step, and `model.keras`. It needs the training data
as a function of the first step, so a resumed run continues the data stream where the
checkpoint left it.
"""


def dataset_fn(start_step):
    return make_training_dataset(data.train_rows, data.plan, seed=0, start_step=start_step)


tokens_per_step = 16 * 64
straight_dir = tempfile.mkdtemp()
straight = train(make_model(), dataset_fn, total_steps, straight_dir,
                 tokens_per_step=tokens_per_step, validation_data=data.validation_dataset,
                 validation_steps=4, log_every=4, eval_every=12, checkpoint_every=8)
print("held-out:", {k: round(v, 3) for k, v in straight.evaluation.items()})

"""
## Kill and resume

Here the "kill" is an exception at step 13, between the checkpoints at 8 and 16 (a real
kill — `SIGKILL`, a lost machine — behaves the same: checkpoints are written atomically).
Resuming restores the step-8 checkpoint, replays steps 9–13 on the same batches and ends
with the same weights as the uninterrupted run.
"""


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen == 13:
            raise KeyboardInterrupt("simulated kill at step 13")


resumed_dir = tempfile.mkdtemp()
try:
    train(make_model(), dataset_fn, total_steps, resumed_dir, tokens_per_step=tokens_per_step,
          log_every=4, eval_every=12, checkpoint_every=8, callbacks=[Interrupt()], stream=False)
except KeyboardInterrupt as interruption:
    print("interrupted:", interruption)
print("checkpoints left:", sorted(os.listdir(os.path.join(resumed_dir, "checkpoints"))))

resumed_model = make_model()
resumed = train(resumed_model, dataset_fn, total_steps, resumed_dir,
                tokens_per_step=tokens_per_step, log_every=4, eval_every=12,
                checkpoint_every=8, resume=True, stream=False)
reference = keras.saving.load_model(straight.model_path)
largest_difference = max(
    float(np.max(np.abs(ops.convert_to_numpy(a) - ops.convert_to_numpy(b))))
    for a, b in zip(reference.weights, resumed_model.weights)
)
print(f"resumed from step {resumed.start_step}; largest weight difference "
      f"to the uninterrupted run: {largest_difference:.1e}")

"""
Training into a folder that holds another run is refused unless you pass `resume=True`
or `overwrite=True` (`--resume` / `--overwrite` on the command line), and a loss that
becomes NaN or infinite stops the run with a message naming the step and the last good
checkpoint.

## The same from the command line

```bash
keras-dualobj train --preset small --output-dir runs/small        # a few minutes on a CPU
keras-dualobj train --preset small --output-dir runs/small --resume   # after a kill
```
"""
