"""
Title: Training at scale: meshes, layouts, bfloat16, gradient accumulation, multi-host
Author: keras-dualobj developers
Date created: 2026/12/03
Last modified: 2026/12/03
Description: Train the dual model on many devices with keras.distribution, in mixed precision, with large batches.
Accelerator: None
"""

"""
## Introduction

The paper trains its 470M model on 2,048 sequences of 2,048 tokens per step (4M tokens)
on 256 GPUs. keras_dualobj does not ship a distributed engine of its own:
**`keras.distribution`** is the engine, as in keras-hub, and the library adds

- `DualBackbone.get_layout_map(mesh)`: how the backbone's weights are sharded;
- `keras_dualobj.training.distribution.make_distribution("data" | "model:BxM")`;
- dtype policies (`mixed_bfloat16`) with losses in float32;
- gradient accumulation whose warmup-stable-decay schedule counts optimizer updates;
- `keras-dualobj train --distribution ... --precision ... --accumulation-steps ...`.

In Keras 3.15 `keras.distribution` runs on **JAX only** (TensorFlow has an unfinished
DTensor prototype, PyTorch none), so this guide runs on JAX. It runs on a CPU: the first
cell asks XLA for four virtual CPU devices, which works because the notebook kernel has
not started JAX yet (the flag must be set before JAX first initialises; in a script,
set it before `import keras`). On a GPU or TPU machine drop that line and the real
devices are used.
"""

"""
## Setup
"""

import contextlib
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_dualobj.models import DualBackbone, DualLM
from keras_dualobj.training import RunSpec, build_optimizer, train
from keras_dualobj.training.distribution import make_distribution

print(keras.distribution.list_devices())

"""
## Meshes and layouts

A `DeviceMesh` arranges the devices on named axes. `"data"` puts them all on one
`batch` axis (`DataParallel`: every device holds all weights and a slice of the batch);
`"model:2x2"` makes a `batch` x `model` mesh for `ModelParallel`, which shards the
weights following `DualBackbone.get_layout_map`: the embedding, the output head, the
attention heads and the SwiGLU width are split over `model`, each matrix's hidden
dimension over `batch` (keras-hub's layout for Gemma and Llama).
"""

config = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=48)
distribution = make_distribution("model:2x2", backbone_config=config)
print(distribution)

with distribution.scope():
    keras.utils.set_random_seed(0)
    model = DualLM(DualBackbone(**config), ar_fraction=0.5, seed=0)

for variable in model.backbone.weights[:7]:
    value = variable.value
    print(f"{variable.path:<50} {str(tuple(value.shape)):<12} "
          f"{str(value.sharding.spec):<28} per device {value.addressable_shards[0].data.shape}")

"""
`get_layout_map` takes the backbone config so that a layout that does not divide is
adjusted: JAX shards a dimension only if the mesh axis divides it, and the paper's
SwiGLU width 3,554 does not divide by 4, so on a 4-way model axis those matrices are
split along their hidden width instead.
"""

mesh = keras.distribution.DeviceMesh((1, 4), ("batch", "model"), keras.distribution.list_devices())
paper = DualBackbone.get_layout_map(mesh, backbone_config={**config, "hidden_dim": 1024,
                                                          "num_heads": 16, "intermediate_dim": 3554})
print(paper["transformer_layer_0/feed_forward/gate/kernel"].axes)

"""
## Training under a distribution

Build and train inside `distribution.scope()` (or call
`keras.distribution.set_distribution`). `fit()` splits every batch over the `batch`
axis; the losses are those of one device, up to float32 rounding. The Muon + AdamW
recipe runs on the sharded variables, and its slots are sharded like them.
"""

rows = np.random.default_rng(0).integers(5, 64, (8, 16)).astype("int32")


def three_steps(distribution_spec):
    scope = make_distribution(distribution_spec, backbone_config=config)
    with scope.scope() if scope else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = DualLM(DualBackbone(**config), ar_fraction=0.5, seed=0)
        model.compile(optimizer=build_optimizer(model, learning_rate=1e-2))
        return model.fit(rows, batch_size=8, epochs=3, verbose=0).history["loss"]


for spec in ("single", "model:2x2"):
    print(spec, np.round(three_steps(spec), 6))

"""
## Checkpoints under a distribution

`keras_dualobj.training.train()` works unchanged: checkpoints gather the sharded
variables into one file, and restoring assigns them back to their layouts, so a run can
even resume on another mesh. A killed run resumed with `resume=True` ends with the
weights of an uninterrupted one (the tests check this under `model:2x2`).
"""

folder = tempfile.mkdtemp()


def dataset(start_step):
    return tf.data.Dataset.from_tensor_slices(np.tile(rows, (2, 1))).batch(4).skip(start_step)


with distribution.scope():
    keras.utils.set_random_seed(0)
    model = DualLM(DualBackbone(**config), ar_fraction=0.5, seed=0)
    model.compile(optimizer=build_optimizer(model, total_steps=4))
    result = train(model, dataset, total_steps=4, output_dir=folder, tokens_per_step=64,
                   log_every=2, stream=False)
print(result.checkpoint.name, sorted(os.listdir(folder)))

"""
## Precision

`RunSpec(precision="mixed_bfloat16")` (or `DualBackbone(..., dtype="mixed_bfloat16")`)
runs the layers in bfloat16 with float32 variables; both losses are computed in
float32, KV-cached AR decoding and MD decoding run under the policy, and a saved model
keeps it. `mixed_float16` adds Keras' dynamic loss scaling.

Attention goes through `keras.ops.dot_product_attention` with an explicit boolean
`[batch, 1, query, key]` mask (per row causal or bidirectional, and document ids).
What each backend does with such a mask (read from Keras 3.15's source; not yet
measured on a GPU): JAX on an Ampere-or-newer GPU tries `jax.nn.dot_product_attention`'s
cuDNN implementation and falls back to XLA if cuDNN refuses the mask; on TPU Keras
skips its Splash kernel when the mask is traced (always, in our compiled steps), and XLA
runs; PyTorch's flash SDPA kernel takes no explicit mask, so
the memory-efficient or math SDPA kernel runs; TensorFlow computes attention with XLA /
einsum. Every path is exact under any mask; only the speed differs.
"""

spec = RunSpec(preset="tiny", precision="mixed_bfloat16", sequence_length=16,
               batch_size=8).resolved()
bf16 = spec.build_model(vocabulary_size=272)
print(bf16.backbone.dtype_policy.name, bf16.backbone.weights[0].dtype,
      bf16(np.ones((1, 16), "int32")).dtype)

"""
## Large batches on few devices: gradient accumulation

`build_optimizer(..., accumulation_steps=k)` (the CLI's `--accumulation-steps`) uses
Keras' `gradient_accumulation_steps`: `fit()` runs micro-batches of `batch / k` rows and
the optimizer updates once per `k` of them with their mean gradient, which equals the
gradient of the `k`-times larger batch (tested). The warmup-stable-decay schedule is
wrapped in `PerUpdateSchedule`, so warmup and decay count updates, not micro-batches.
"""

keras.utils.set_random_seed(0)
model = DualLM(DualBackbone(**config), ar_fraction=1.0, seed=0)
model.compile(optimizer=build_optimizer(model, total_steps=2, accumulation_steps=2))
model.fit(rows, batch_size=2, epochs=1, verbose=0)  # 4 micro-batches of 2 rows
print("updates:", int(model.optimizer.iterations))

"""
## The paper's run as one command

```bash
keras-dualobj train --preset paper-470m --source text --path my_corpus/ \\
    --distribution model:8x4 --precision mixed_bfloat16 --accumulation-steps 8 \\
    --output-dir runs/paper-470m
```

trains the paper's model (sequence 2,048, 2,048 rows per update as 8 micro-batches
of 256 split over the mesh, Muon at 7e-3, warmup-stable-decay) on 32 devices.
`--max-steps 2 --backbone-override num_layers=2 ...` makes a dry run of the same
command on a CPU. Under accumulation the logged steps and checkpoint names count
micro-batches (`fit()` steps); the optimizer and the schedule count updates.

## Multi-host

Start the same command on every host after telling Keras about the others, either in
Python:

```python
keras.distribution.initialize(job_addresses="10.0.0.1:1234", num_processes=8, process_id=i)
```

or through `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
`KERAS_DISTRIBUTION_PROCESS_ID` (the `train` command calls `initialize()` when they are
set). The mesh then spans every host's devices, and `fit()` hands each process its own
slice of every global batch of the `tf.data` pipeline (Keras rebatches to the
per-process batch and shards by process), so the repetition plan's order of global
batches is unchanged; the tests simulate two processes to check it.
"""
