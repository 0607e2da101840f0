"""Training tokens/s and MFU of a preset on one accelerator (run by `benchmarks/gpu.sh`; issue 12, goal 7).

Builds the preset's `DualLM` (α = 0.5 by default) under a Keras dtype policy
(`mixed_bfloat16` by default: bfloat16 compute, float32 weights; the losses are
computed in float32), trains it with `fit()` and AdamW on random packed rows (a
document boundary every ~500 tokens) and reports:

- tokens/s over `--steps` steps after `--warmup-steps` (compilation excluded; the
  clock stops after the last step's loss has been read back);
- model FLOPs per token: `6 * N` for the weight matmuls (N = non-embedding parameters
  plus the output head, which is a matmul even when tied) plus `12 * layers * length
  * width` for attention scores and values (forward + backward, the full square: the
  per-row mask is applied to a dense score matrix, so no half is skipped);
- MFU = achieved FLOP/s / the chip's peak dense bfloat16 FLOP/s (`--peak-tflops`, or
  looked up from `nvidia-smi`'s name in `PEAK_BF16_TFLOPS`), with and without the
  attention FLOPs.

Usage (any backend; on a CPU only for checking the script, with a tiny preset):

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py --preset base --steps 300
    KERAS_BACKEND=torch python benchmarks/gpu_throughput.py --preset tiny --steps 3 \
        --warmup-steps 1 --batch-size 2 --sequence-length 64 --peak-tflops 1

Prints one JSON line (and appends it to `--output` if given).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Dense bfloat16 peaks (TFLOP/s, no sparsity) from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0,
    "H100 NVL": 835.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0,
    "RTX 4090": 165.0, "V100": 125.0,
}


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def peak_tflops(name):
    if not name:
        return None
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def flops_per_token(config, sequence_length):
    """Training FLOPs per token: weight matmuls and attention (see the module docstring)."""
    from keras_dualobj.models.presets import parameter_counts

    counts = parameter_counts(config)
    head = config["vocabulary_size"] * config["hidden_dim"]
    matmul = 6 * (counts["non_embedding"] + head)
    attention = 12 * config["num_layers"] * sequence_length * config["hidden_dim"]
    return matmul, attention


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--dtype-policy", default="mixed_bfloat16")
    parser.add_argument("--ar-fraction", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=None, help="default: the preset's")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps, args.warmup_steps) < 1:
        parser.error(f"--batch-size, --steps, --warmup-steps must be >= 1; received "
                     f"{args.batch_size}, {args.steps}, {args.warmup_steps}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # tf.data only; the GPU is the backend's
    from keras_dualobj.models import DualBackbone
    from keras_dualobj.models import DualLM
    from keras_dualobj.models.presets import get_preset

    keras.config.set_dtype_policy(args.dtype_policy)
    preset = get_preset(args.preset)
    config = preset["backbone"]
    length = args.sequence_length or preset["training"]["sequence_length"]
    keras.utils.set_random_seed(0)
    model = DualLM(DualBackbone.from_preset(args.preset), ar_fraction=args.ar_fraction, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    rng = np.random.default_rng(0)
    rows = rng.integers(16, config["vocabulary_size"], (args.batch_size * 4, length)).astype("int32")
    documents = np.cumsum(rng.random(rows.shape) < 1 / 500, axis=1).astype("int32")
    dataset = (tf.data.Dataset.from_tensor_slices({"token_ids": rows, "document_ids": documents})
               .batch(args.batch_size, drop_remainder=True).repeat().prefetch(4))
    started = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0, shuffle=False)
    float(history.history["loss"][-1])
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    final_loss = float(history.history["loss"][-1])
    seconds = time.perf_counter() - started
    tokens_per_second = args.steps * args.batch_size * length / seconds
    matmul, attention = flops_per_token(config, length)
    name = gpu_name()
    peak = args.peak_tflops or peak_tflops(name)
    record = {
        "backend": keras.backend.backend(), "device": name, "preset": args.preset,
        "dtype_policy": args.dtype_policy, "ar_fraction": args.ar_fraction,
        "batch_size": args.batch_size, "sequence_length": length, "steps": args.steps,
        "compile_and_warmup_seconds": round(compile_seconds, 1), "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens_per_second, 1), "final_loss": final_loss,
        "flops_per_token_matmul": matmul, "flops_per_token_attention": attention,
        "peak_tflops": peak,
        "mfu": None if peak is None else tokens_per_second * (matmul + attention) / (peak * 1e12),
        "mfu_without_attention": None if peak is None else tokens_per_second * matmul / (peak * 1e12),
    }
    line = json.dumps(record)
    print(line, flush=True)
    if args.output:
        with open(args.output, "a") as stream:
            stream.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
