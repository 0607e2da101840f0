"""Per-device memory of the paper-470m training step under 2 x 2 and 1 x 4 meshes.

Tokens/s on virtual CPU devices mean nothing, so this reports what a mesh buys:
XLA's memory analysis of the compiled training step (`jax.jit(...).lower(...)
.compile().memory_analysis()`) of `keras_dualobj`'s own `fit()` step (the Keras JAX
trainer's `train_step`, Muon + AdamW, bfloat16 or float32) on four virtual CPU
devices. Nothing of 470M parameters is allocated: the model is built inside
`jax.eval_shape`, so its variables are abstract, and the step is lowered on
`jax.ShapeDtypeStruct`s carrying each variable's sharding.

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


def step_memory(layout, batch_size, sequence_length, precision):
    """Compiled memory analysis of one training step of paper-470m on `layout`."""
    import jax
    import keras
    from keras.src.distribution import distribution_lib

    from keras_dualobj.models.presets import get_preset
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training.distribution import make_distribution

    spec = RunSpec(preset="paper-470m", precision=precision, sequence_length=sequence_length,
                   batch_size=batch_size, tokenizer="byte").resolved()
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
    arguments = analysis.argument_size_in_bytes
    temporaries = analysis.temp_size_in_bytes
    code = analysis.generated_code_size_in_bytes
    distribution_lib.set_distribution(None)
    parameters = sum(int(v.size) if hasattr(v, "size") else 0 for v in state[0])
    return {
        "layout": f"batch {layout.split('x')[0]} x model {layout.split('x')[1]}",
        "parameters": parameters,
        "per_device_arguments_gib": arguments / GIB,
        "per_device_temporaries_gib": temporaries / GIB,
        "per_device_generated_code_gib": code / GIB,
        "per_device_total_gib": (arguments + temporaries + code) / GIB,
        "seconds_to_compile": time.perf_counter() - started,
        "keras_version": keras.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["2x2", "1x4"])
    parser.add_argument("--batch-size", type=int, default=8,
                        help="rows per step over the whole mesh (default 8)")
    parser.add_argument("--sequence-length", type=int, default=2048)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--output", default="distribution_memory.json")
    args = parser.parse_args(argv)
    results = []
    for layout in args.layouts:
        result = step_memory(layout, args.batch_size, args.sequence_length, args.precision)
        results.append(result)
        print(f"{result['layout']}: {result['per_device_total_gib']:.2f} GiB per device "
              f"(arguments {result['per_device_arguments_gib']:.2f}, temporaries "
              f"{result['per_device_temporaries_gib']:.2f}); {result['parameters']:,} "
              f"parameters; {result['seconds_to_compile']:.0f} s", flush=True)
    settings = {key: getattr(args, key) for key in ("batch_size", "sequence_length", "precision")}
    with open(args.output, "w") as file:
        json.dump({"settings": settings, "results": results}, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
