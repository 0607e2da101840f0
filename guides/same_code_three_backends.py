"""
Title: Same code, three backends: TensorFlow, JAX and PyTorch
Author: keras-dualobj developers
Date created: 2026/12/03
Last modified: 2026/12/03
Description: Pick a Keras backend with one variable, get the same numbers on all three, train in bfloat16, and see what does differ.
Accelerator: None
"""

"""
## Introduction

keras-dualobj is written against Keras 3's backend-agnostic API (`keras.ops`,
`keras.random`, `fit()`), so one script trains, scores and decodes a dual-objective
model on TensorFlow, JAX or PyTorch. This guide:

1. shows how the backend is chosen;
2. saves one tiny model and, in a fresh Python process per backend, computes its causal
   logits, its AR loss and its masked-diffusion bound (ELBO), then compares the numbers;
3. runs the same model in mixed precision (`mixed_bfloat16`) on each backend;
4. says what does differ between backends: random streams, compilation, threads and
   speed, and how to pick one for your machine.

It needs all three backends installed (`pip install "keras-dualobj[all]"`) and takes a
minute or two on a 2-core CPU, most of it spent starting the three processes.
"""

"""
## Setup

The backend is fixed when Keras is first imported, by the `KERAS_BACKEND` environment
variable (else by `"backend"` in `~/.keras/keras.json`, else TensorFlow). Set it before
`import keras` — in a notebook, in the first cell (`os.environ["KERAS_BACKEND"] = "jax"`),
and restart the kernel to change it — or outside (`KERAS_BACKEND=torch jupyter lab`).
This guide, like the others, sets nothing, so it runs on the backend you have chosen, or
on TensorFlow, which every install of keras-dualobj has.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Keras picks the backend: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow.

import keras
import numpy as np

from keras_dualobj import DualBackbone, DualLM
from keras_dualobj.data import prepare_data

keras.utils.set_random_seed(0)
print("this process runs Keras", keras.__version__, "on", keras.config.backend())

"""
## One model, trained and saved once

A tiny byte-level model trained for 16 steps on CPython's built-in documentation text
(always there, offline), so its weights are not just the initial ones. The `.keras`
file holds the weights, the configuration and the tokenizer; any backend loads it.
"""

data = prepare_data(
    "builtin",
    tokenizer="byte",
    sequence_length=64,
    batch_size=8,
    unique_tokens=16 * 8 * 64,
    repetitions=1,
    validation_fraction=0.02,
    seed=0,
    verbose=False,
)
backbone = DualBackbone(
    vocabulary_size=data.tokenizer.vocabulary_size(),
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
)
model = DualLM(backbone, tokenizer=data.tokenizer, ar_fraction=0.5, seed=0)
model.compile(optimizer=keras.optimizers.AdamW(3e-3))
model.fit(data.train_dataset, verbose=0)

work_dir = Path(tempfile.mkdtemp())
model.save(work_dir / "model.keras")
np.savez(
    work_dir / "rows.npz",
    token_ids=data.validation_rows.token_ids[:8],
    document_ids=data.validation_rows.document_ids[:8],
)
print("saved", sorted(path.name for path in work_dir.iterdir()))

"""
## The same model under each backend

The script below is what runs under each backend, each time in a new Python process
(a process holds one backend). It loads the model and the eight held-out rows and
saves:

- the causal logits and the exact AR loss of every row;
- the MD ELBO with 4 masks per row. Its masks are drawn by NumPy from `seed`, not by the
  backend, so all three score exactly the same masked rows;
- the same model in mixed precision: `dtype="mixed_bfloat16"` keeps the variables in
  float32 and computes in bfloat16. It gets the float32 weights, gives its logits and
  AR loss, and trains for 4 steps to show that training works too;
- a few numbers that *do* differ by backend: what `jit_compile="auto"` resolved to, the
  first draws of `keras.random.uniform` with seed 0, and the time of the first and of a
  later scoring call.
"""

BACKEND_SCRIPT = '''
import sys, time
from pathlib import Path
import keras, numpy as np
from keras import ops
from keras_dualobj import DualBackbone, DualLM

work_dir = Path(sys.argv[1])
model = keras.saving.load_model(work_dir / "model.keras")
rows = np.load(work_dir / "rows.npz")
token_ids, document_ids = rows["token_ids"], rows["document_ids"]
inputs = {"token_ids": token_ids, "document_ids": document_ids}
results = {"logits": ops.convert_to_numpy(model(inputs))}
start = time.perf_counter()
ar = model.score(token_ids, "ar", document_ids=document_ids)
results["first_score_seconds"] = time.perf_counter() - start
start = time.perf_counter()
ar = model.score(token_ids, "ar", document_ids=document_ids)
results["later_score_seconds"] = time.perf_counter() - start
md = model.score(token_ids, "md", document_ids=document_ids, num_samples=4, seed=0)
results["ar_loss"] = ar["nll"].sum() / ar["num_tokens"].sum()
results["md_elbo"] = md["nll"].sum() / md["num_tokens"].sum()
results["uniform_draws"] = ops.convert_to_numpy(keras.random.uniform((3,), seed=0))

config = {**model.backbone.get_config(), "dtype": "mixed_bfloat16"}
mixed = DualLM(DualBackbone.from_config(config), tokenizer=model.tokenizer,
               ar_fraction=0.5, seed=0)
mixed.set_weights(model.get_weights())
results["bf16_logits"] = ops.convert_to_numpy(ops.cast(mixed(inputs), "float32"))
bf16_ar = mixed.score(token_ids, "ar", document_ids=document_ids)
results["bf16_ar_loss"] = bf16_ar["nll"].sum() / bf16_ar["num_tokens"].sum()
mixed.compile(optimizer=keras.optimizers.AdamW(3e-3))
results["jit_compile"] = str(mixed.jit_compile)
history = mixed.fit(inputs, batch_size=2, epochs=1, verbose=0)
results["bf16_train_loss"] = history.history["loss"][-1]
results["bf16_dtypes"] = f"{mixed.trainable_weights[0].dtype}/{mixed.backbone.compute_dtype}"
np.savez(work_dir / f"{keras.config.backend()}.npz", **results)
'''
script_path = work_dir / "backend_script.py"
script_path.write_text(BACKEND_SCRIPT)

BACKENDS = ("tensorflow", "jax", "torch")
for backend in BACKENDS:
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(script_path), str(work_dir)],
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"The {backend} run failed:\n{completed.stderr[-3000:]}")
    print(f"{backend:>10}: done in {time.perf_counter() - start:.0f} s (start-up included)")
results = {
    backend: {name: value[()] if value.ndim == 0 else value
              for name, value in np.load(work_dir / f"{backend}.npz").items()}
    for backend in BACKENDS
}

"""
## Identical numbers

Every backend computes the same function of the same weights; only the order of
floating-point operations differs (each uses its own matrix-multiply kernels), so the
logits agree to float32 round-off, about 1e-6 here, and the losses to many digits:
"""

reference = results["tensorflow"]
print(f"{'backend':<10} {'AR loss':>9} {'MD ELBO':>9}  max |logits - TensorFlow's|")
for backend, result in results.items():
    difference = np.max(np.abs(result["logits"] - reference["logits"]))
    print(f"{backend:<10} {float(result['ar_loss']):9.6f} {float(result['md_elbo']):9.6f}"
          f"  {difference:.1e}")

logits_spread = max(
    np.max(np.abs(result["logits"] - reference["logits"])) for result in results.values()
)
print(f"largest difference between two backends' logits: {logits_spread:.1e}")
assert logits_spread < 1e-3, "the backends disagree beyond float32 round-off"

"""
A model trained on one backend is therefore the same model on the others: train with
JAX, score with PyTorch, serve with TensorFlow.

## Mixed precision

`mixed_bfloat16` halves the activations' memory and uses bfloat16 matrix units where
the hardware has them (recent GPUs and TPUs, some CPUs). Variables stay float32, so the
optimizer's updates are not rounded away; the logits come out of the output head in
float32 and the losses are computed in float32. Set it for a single model with
`dtype="mixed_bfloat16"` (as the script does) or for every model built afterwards:
"""

keras.mixed_precision.set_global_policy("mixed_bfloat16")
mixed_backbone = DualBackbone.from_config(backbone.get_config() | {"dtype": None})
print("variables:", mixed_backbone.trainable_weights[0].dtype,
      "computation:", mixed_backbone.compute_dtype)
keras.mixed_precision.set_global_policy("float32")

"""
On every backend the bfloat16 model runs, scores and trains. bfloat16 keeps about 3
significant digits, so its logits differ from float32 by up to ~1e-2 and the AR loss
in the third or fourth decimal, and the backends agree with each other only to
bfloat16's precision (each rounds in different places). The training losses differ
between backends for another reason, the random streams (below):
"""

print(f"{'backend':<10} {'bf16 AR loss':>12} {'fp32 AR loss':>12} {'max |bf16 - fp32 logits|':>25}"
      f" {'bf16 train loss':>15}  variables/compute")
for backend, result in results.items():
    difference = np.max(np.abs(result["bf16_logits"] - result["logits"]))
    print(f"{backend:<10} {float(result['bf16_ar_loss']):12.4f} {float(result['ar_loss']):12.4f}"
          f" {difference:25.3f} {float(result['bf16_train_loss']):15.4f}  {result['bf16_dtypes']}")
assert all(np.isfinite(float(result["bf16_train_loss"])) for result in results.values())

"""
Whether it is faster depends on the hardware: GPUs and TPUs with bfloat16 units gain
the most, and on a CPU it often does not pay. Time a few steps both ways before a long
job, and compare its held-out losses with a float32 run.

## What differs

**Random streams.** `keras.random` with the same seed draws different numbers on each
backend (each uses its own generator), so masks, row assignments and initial weights
differ between backends and two training runs are alike only statistically. On one
backend, `keras.utils.set_random_seed` makes a run repeat exactly. The MD ELBO that
`score()` and `evaluate_multiple_choice()` compute draws its masks with NumPy, so it is
the same everywhere.
"""

for backend, result in results.items():
    print(f"{backend:<10} keras.random.uniform((3,), seed=0) = {np.round(result['uniform_draws'], 4)}")

"""
**Compilation.** `compile(jit_compile="auto")` (the default) resolves differently for
`fit()`: JAX compiles the training step with XLA (`jax.jit`); TensorFlow runs it as a
`tf.function` graph and adds XLA only when a GPU is present; PyTorch runs it eagerly,
and `jit_compile=True` asks for `torch.compile` (a long first compile, then possibly
faster steps). Generation and scoring compile their own functions, once per input
shape: with XLA on TensorFlow (CPU included) and on JAX, eagerly under `torch.no_grad()`
on PyTorch. So the first call pays for tracing and compiling, and later calls with the
same shapes are fast on TensorFlow and JAX; PyTorch pays nothing up front and the same
on every call:
"""

for backend, result in results.items():
    print(f"{backend:<10} jit_compile='auto' -> {result['jit_compile']:<5}  "
          f"first score() {float(result['first_score_seconds']):.2f} s, "
          f"later {float(result['later_score_seconds']):.3f} s")

"""
**Threads.** Each backend sizes its own thread pools to the machine's cores. On a
machine that other jobs share, limit them before the backend is imported:

```python
os.environ["OMP_NUM_THREADS"] = "2"          # PyTorch (or torch.set_num_threads(2))
os.environ["TF_NUM_INTRAOP_THREADS"] = "2"   # TensorFlow (also tf.data and the data pipeline)
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"  # JAX
```

**Speed.** A model this small measures start-up and overheads, not the backends. For
training speed on your machine, run `benchmarks/training_throughput.py`, which times
`fit()` on each backend side by side; `docs/training.md` lists what it measured on a 2-core
CPU (all three within ~20% of each other on one thread; PyTorch and JAX fell far behind
TensorFlow when other jobs held the cores).

## Which backend to pick

The numbers are the same, so pick for speed and for what surrounds your model:

- **Measure** on your hardware with `benchmarks/training_throughput.py` (and
  `benchmarks/generation_speed.py` for decoding) before a long run.
- **GPUs and TPUs**: JAX compiles every step with XLA and is the usual choice on TPUs;
  TensorFlow compiles with XLA on GPUs; PyTorch runs eagerly unless `jit_compile=True`.
- **Your other code**: choose the backend of the rest of your pipeline (a PyTorch
  training stack, a TensorFlow serving path); the `.keras` file moves between them.
- **CPU only, shared machine**: limit threads as above; TensorFlow was the least
  sensitive to busy cores in our measurements.
"""
