"""Per-device memory of the paper-470m training step under 2 x 2 and 1 x 4 meshes.

Tokens/s on virtual CPU devices mean nothing, so this reports what a mesh buys:
XLA's memory analysis of the compiled training step (`jax.jit(...).lower(...)
.compile().memory_analysis()`) of `keras_dualobj`'s own `fit()` step (the Keras JAX
trainer's `train_step`, Muon + AdamW, bfloat16 or float32) on four virtual CPU
devices. Nothing of 470M parameters is allocated: the model is built inside
`jax.eval_shape`, so its variables are abstract, and the step is lowered on
`jax.ShapeDtypeStruct`s carrying each variable's sharding.

XLA's CPU compiler needs over 15 minutes for the 24-layer step on a 2-core machine,
so the step is compiled with 1 and 2 layers (`--compile-layers`) and the per-device
temporaries (activations kept for the backward pass, gradients) are extrapolated
linearly to 24 layers (every block has the same shapes); the per-device arguments
(weights, optimizer slots, the batch) are exact: summed from the shard shapes of the
full 24-layer model's abstract variables.

    KERAS_BACKEND=jax python benchmarks/distribution_memory.py \
        [--layouts 2x2 1x4] [--batch-size 8] [--sequence-length 2048] [--precision mixed_bfloat16]

Prints one line per layout and writes `distribution_memory.json` (per device:
arguments = weights, optimizer slots and the batch shard; temporaries = activations
and gradients; generated code; and their sum).
"""

import argparse
import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GIB = 2**30


def abstract_state(model):
    """`(trainable, non_trainable, optimizer, metrics)` as sharded ShapeDtypeStructs."""
    import jax

    def spec(variable):
        layout = getattr(variable, "_layout", None)
        sharding = None if layout is None else getattr(layout, "backend_layout", layout)
        return jax.ShapeDtypeStruct(tuple(variable.shape), variable.dtype, sharding=sharding)

    return (
        [spec(v) for v in model.trainable_variables],
        [spec(v) for v in model.non_trainable_variables],
        [spec(v) for v in model.optimizer.variables],
        [spec(v) for v in model.metrics_variables],
    )


def shard_bytes(structs):
    """Bytes one device holds of these sharded `ShapeDtypeStruct`s."""
    import numpy as np

    total = 0
    for struct in structs:
        shape = struct.shape if struct.sharding is None else struct.sharding.shard_shape(struct.shape)
        total += int(np.prod(shape, dtype=np.int64)) * np.dtype(struct.dtype).itemsize
    return total


def step_memory(layout, batch_size, sequence_length, precision, num_layers=None, compile_step=True):
    """Memory of one training step of paper-470m (`num_layers` overrides) on `layout`."""
    import jax
    import keras

    from keras_dualobj.models.presets import get_preset
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training.distribution import make_distribution

    overrides = None if num_layers is None else {"num_layers": num_layers}
    spec = RunSpec(preset="paper-470m", precision=precision, sequence_length=sequence_length,
                   batch_size=batch_size, tokenizer="byte",
                   backbone_overrides=overrides).resolved()
    backbone_config = get_preset("paper-470m")["backbone"]
    distribution = make_distribution(f"model:{layout}", backbone_config=backbone_config)
    holder = {}

    def build():
        with distribution.scope():
            model = spec.build_model(vocabulary_size=backbone_config["vocabulary_size"])
            spec.compile(model, total_steps=8192)
            model.optimizer.build(model.trainable_variables)
        holder["model"] = model
        return [v.value for v in model.variables]

    started = time.perf_counter()
    jax.eval_shape(build)
    model = holder["model"]
    state = abstract_state(model)
    parameters = sum(int(struct.size) for struct in state[0])
    state_bytes = shard_bytes([struct for group in state for struct in group])
    if not compile_step:
        keras.distribution.set_distribution(None)
        return {"parameters": parameters, "state_bytes": state_bytes}
    batch_layout = distribution.get_data_layout((batch_size, sequence_length))
    batch_sharding = batch_layout.backend_layout
    data = ({
        "token_ids": jax.ShapeDtypeStruct((batch_size, sequence_length), "int32",
                                          sharding=batch_sharding),
        "document_ids": jax.ShapeDtypeStruct((batch_size, sequence_length), "int32",
                                             sharding=batch_sharding),
    },)
    with distribution.scope():
        compiled = jax.jit(model.train_step).lower(state, data).compile()
    analysis = compiled.memory_analysis()
    keras.distribution.set_distribution(None)
    return {
        "parameters": parameters,
        "state_bytes": state_bytes,
        "argument_bytes": analysis.argument_size_in_bytes,
        "temporary_bytes": analysis.temp_size_in_bytes,
        "code_bytes": analysis.generated_code_size_in_bytes,
        "seconds": time.perf_counter() - started,
    }


def layout_memory(layout, args):
    """Per-device GiB of the 24-layer step on `layout` (see the module docstring)."""
    full = step_memory(layout, args.batch_size, args.sequence_length, args.precision,
                       compile_step=False)
    small, large = (
        step_memory(layout, args.batch_size, args.sequence_length, args.precision, layers)
        for layers in args.compile_layers
    )
    per_layer = (large["temporary_bytes"] - small["temporary_bytes"]) / (
        args.compile_layers[1] - args.compile_layers[0])
    temporaries = small["temporary_bytes"] + per_layer * (24 - args.compile_layers[0])
    batch_bytes = small["argument_bytes"] - small["state_bytes"]
    arguments = full["state_bytes"] + batch_bytes
    mesh = layout.split("x")
    return {
        "layout": f"batch {mesh[0]} x model {mesh[1]}",
        "parameters": full["parameters"],
        "per_device_arguments_gib": arguments / GIB,
        "per_device_temporaries_gib": temporaries / GIB,
        "per_device_total_gib": (arguments + temporaries) / GIB,
        "compiled": {str(n): r for n, r in zip(args.compile_layers, (small, large))},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["2x2", "1x4"])
    parser.add_argument("--batch-size", type=int, default=8,
                        help="rows per step over the whole mesh (default 8)")
    parser.add_argument("--sequence-length", type=int, default=2048)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--compile-layers", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--output", default="distribution_memory.json")
    args = parser.parse_args(argv)
    results = []
    for layout in args.layouts:
        result = layout_memory(layout, args)
        results.append(result)
        print(f"{result['layout']}: {result['per_device_total_gib']:.2f} GiB per device "
              f"(weights, slots and batch {result['per_device_arguments_gib']:.2f}, "
              f"temporaries {result['per_device_temporaries_gib']:.2f}); "
              f"{result['parameters']:,} parameters", flush=True)
    settings = {key: getattr(args, key) for key in
                ("batch_size", "sequence_length", "precision", "compile_layers")}
    with open(args.output, "w") as file:
        json.dump({"settings": settings, "results": results}, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
