"""The JAX distribution checks, run by `test_distribution.py` in ONE subprocess.

JAX fixes its device count when it starts, so four virtual CPU devices need
`XLA_FLAGS=--xla_force_host_platform_device_count=4` before `import jax`: the test
starts this script with it and reads the JSON it prints last (one JAX start-up for
all the checks). Run by hand: `KERAS_BACKEND=jax python tests/distribution_checks.py DIR`.
"""

import contextlib
import json
import os
import sys

# First: XLA stops reading the flags at the thread limit's bare `intra_op_...=1`.
os.environ["XLA_FLAGS"] = " ".join(
    ["--xla_force_host_platform_device_count=4", os.environ.get("XLA_FLAGS", "")]
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_dualobj.models import DualBackbone  # noqa: E402
from keras_dualobj.models import DualLM  # noqa: E402
from keras_dualobj.training import build_optimizer  # noqa: E402
from keras_dualobj.training.distribution import make_distribution  # noqa: E402

SPECS = ("single", "data", "model:2x2")
ALPHAS = (0.0, 0.5, 1.0)
STEPS = 3
CONFIG = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=48)


def _rows(num_rows=8, length=16, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 64, (num_rows, length)).astype("int32")
    documents = np.cumsum(rng.random((num_rows, length)) < 0.1, axis=1).astype("int32")
    return {"token_ids": tokens, "document_ids": documents}


def _scope(spec):
    distribution = make_distribution(spec, backbone_config=CONFIG)
    return distribution, (distribution.scope() if distribution else contextlib.nullcontext())


def _model(alpha, total_steps=None):
    keras.utils.set_random_seed(0)
    model = DualLM(DualBackbone(**CONFIG), ar_fraction=alpha, seed=0)
    model.compile(optimizer=build_optimizer(
        model, learning_rate=1e-2, total_steps=total_steps, warmup_fraction=0.25))
    return model


def _weights(model):
    return {variable.path: np.asarray(variable.value, "float32") for variable in model.weights}


def losses_by_spec():
    """Per-step losses (one batch per epoch: the loss at the weights before each
    update) and the final weights, for each α and distribution."""
    rows = _rows()
    results = {}
    for alpha in ALPHAS:
        reference = None
        for spec in SPECS:
            _, scope = _scope(spec)
            with scope:
                model = _model(alpha)
                history = model.fit(rows, batch_size=8, epochs=STEPS, shuffle=False, verbose=0)
                weights = _weights(model)
            reference = reference or weights
            results[f"{alpha}/{spec}"] = {
                "losses": [float(loss) for loss in history.history["loss"]],
                "max_weight_difference": max(
                    float(np.max(np.abs(weights[path] - reference[path]))) for path in weights
                ),
            }
    return results


def shardings():
    """Layout specs and per-device shard shapes of the variables under `model:2x2`."""
    distribution, scope = _scope("model:2x2")
    with scope:
        model = _model(0.5)
        model.fit(_rows(), batch_size=8, epochs=1, verbose=0)
    layout_map = distribution._layout_map

    def describe(variable, layout):
        value = variable.value
        return {
            "expected": None if layout is None else list(layout.axes),
            "spec": [None if axis is None else str(axis) for axis in value.sharding.spec],
            "shape": list(value.shape),
            "shard_shape": list(value.addressable_shards[0].data.shape),
        }

    variables = {v.path: describe(v, layout_map[v.path]) for v in model.backbone.weights}
    # Optimizer slots (Muon momentum, Adam moments) should follow their variable.
    slots = {v.path: describe(v, None) for v in model.optimizer.variables if v.ndim >= 2}
    return {"variables": variables, "optimizer_slots": slots}


def resume_under_distribution(folder):
    """Final weights of an uninterrupted run and of a killed-then-resumed run,
    both under `model:2x2` with `keras_dualobj.training.train`."""
    import tensorflow as tf

    from keras_dualobj.training import train

    total_steps, rows = 6, _rows(num_rows=24, seed=1)

    def dataset(start_step):
        data = tf.data.Dataset.from_tensor_slices(rows).batch(4)
        return data.skip(start_step)

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations) == 5:
                raise RuntimeError("killed at step 5")

    def run(name, resume=False, callbacks=()):
        _, scope = _scope("model:2x2")
        with scope:
            model = _model(0.5, total_steps=total_steps)
            train(model, dataset, total_steps, os.path.join(folder, name), tokens_per_step=64,
                  log_every=2, checkpoint_every=2, resume=resume, callbacks=callbacks,
                  stream=False)
            return _weights(model)

    straight = run("straight")
    try:
        run("killed", callbacks=[Kill()])
        raise AssertionError("the run was not killed")
    except RuntimeError:
        pass
    resumed = run("killed", resume=True)
    return {
        "max_weight_difference": max(
            float(np.max(np.abs(straight[path] - resumed[path]))) for path in straight
        ),
        "trained_difference": max(
            float(np.max(np.abs(straight[path] - _weights(_model(0.5))[path])))
            for path in ("token_embedding/embeddings",)
        ),
    }


def process_shards():
    """Two simulated processes under `data` (4 devices): Keras' per-process
    sharding of our repetition-plan pipeline; each step's shards must make up
    the global batch."""
    from keras_dualobj.data import make_training_dataset
    from keras_dualobj.data import pack_documents
    from keras_dualobj.data import plan_repetition

    packed = pack_documents([list(range(16, 116))] * 8, sequence_length=10)
    plan = plan_repetition(packed, batch_size=8, repetitions=2)
    global_batches = [b["token_ids"].numpy().tolist()
                      for b in make_training_dataset(packed, plan, seed=0)]
    per_process = []
    for process_id in range(2):
        distribution = make_distribution("data")
        distribution._num_processes, distribution._process_id = 2, process_id
        distribution._is_multi_process = True
        shard = distribution.distribute_dataset(make_training_dataset(packed, plan, seed=0))
        per_process.append([b["token_ids"].numpy().tolist() for b in shard])
    return {"global": global_batches, "per_process": per_process}


def cli_dry_run(folder):
    """`keras-dualobj train --distribution model:2x2` on a tiny `paper-470m`: what
    `test_distribution_cli.check_dry_run` reads."""
    from test_distribution_cli import DRY_RUN
    from test_distribution_cli import dry_run_facts

    from keras_dualobj.cli import main as cli_main

    output_dir = os.path.join(folder, "cli")
    code = cli_main(DRY_RUN + ["--distribution", "model:2x2", "--output-dir", output_dir])
    keras.distribution.set_distribution(None)
    return dry_run_facts(code, output_dir)


def main(folder):
    result = {
        "devices": [str(device) for device in keras.distribution.list_devices()],
        "losses": losses_by_spec(),
        "shardings": shardings(),
        "resume": resume_under_distribution(folder),
        "process_shards": process_shards(),
        "cli": cli_dry_run(folder),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
