"""A dual training step (α = 0.5) vs a pure-AR step (α = 1) under `fit()` (issue 12, goal 2).

Per backend, one child process builds `DualLM`s with the same weights at α = 1, 0.5
and 0, and times their `fit()` steps interleaved (α = 1, 0.5, 0, 1, 0.5, 0, ...;
medians of per-step times) on the same packed batches (document ids, a boundary
every ~40 tokens). Configuration: the pilot's (4 x 128, rows of 128, batch 32,
vocabulary 69), AdamW.

The dual step differs from the AR step only by the corruption of the MD rows (one
uniform draw per row and position, a sort per row to pick the k lowest, `where`)
and by the per-row `prefix_lengths` of the attention mask; both steps build the same
`[batch, length, length]` mask and run one forward pass. On PyTorch, where `fit()`
runs eagerly and nothing fuses these ops, the run also times the masking alone
(`masking_seconds`: row split + corruption + mask for α = 0.5, the mask alone for
α = 1), so its share of a step shows directly.

With `--vocabulary-size 32768 --sequence-length 64 --batch-size 8` the loss's passes over
the `[batch, length, vocabulary]` logits dominate a CPU step, as they become a visible share
of a GPU step at the paper's vocabulary (51,200): there the dual step's cost is the cost of
its loss (issue 28: the loss reads the logits once).

Usage (repository root):

    python benchmarks/dual_vs_ar_step.py --threads 1
    python benchmarks/dual_vs_ar_step.py --backends torch --rounds 4 --steps 6
    python benchmarks/dual_vs_ar_step.py --vocabulary-size 32768 --sequence-length 64 --batch-size 8

Writes `benchmarks/results/dual_vs_ar_step.json`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

CONFIG = {
    "vocabulary_size": 69, "num_layers": 4, "num_heads": 4, "hidden_dim": 128,
    "intermediate_dim": 344, "sequence_length": 128, "batch_size": 32,
}
AR_FRACTIONS = (1.0, 0.5, 0.0)


def _masking_seconds(model, token_ids, document_ids, repeats=20):
    """Median seconds of the masking work of one training step, run eagerly."""
    from keras import ops

    from keras_dualobj.layers.attention_mask import dual_attention_mask
    from keras_dualobj.objectives import sample_ar_rows

    batch_size, length = token_ids.shape

    def masking():
        if model.ar_fraction == 1.0:
            prefix_lengths = ops.zeros((batch_size,), "int32")
        else:
            ar_rows = sample_ar_rows(batch_size, model.ar_fraction, model.seed_generator)
            corruption = model.corrupt(token_ids, document_ids, model.seed_generator)
            masked = ops.logical_and(corruption["masked_positions"],
                                     ops.logical_not(ar_rows)[:, None])
            ops.where(masked, model.mask_token_id, token_ids)
            prefix_lengths = ops.where(ar_rows, 0, length)
        return ops.convert_to_numpy(dual_attention_mask(document_ids, prefix_lengths))

    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        masking()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def run_child(backend, threads, rounds, steps, config):
    _common.start_backend(backend, threads)
    import json

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_dualobj.models import DualBackbone
    from keras_dualobj.models import DualLM

    CONFIG.update(config)
    load_before = _common.machine()["load_average"]
    length, batch_size = CONFIG["sequence_length"], CONFIG["batch_size"]
    rng = np.random.default_rng(0)
    rows = rng.integers(5, CONFIG["vocabulary_size"], (batch_size * 8, length)).astype("int32")
    documents = np.cumsum(rng.random(rows.shape) < 1 / 40, axis=1).astype("int32")
    dataset = (tf.data.Dataset.from_tensor_slices({"token_ids": rows, "document_ids": documents})
               .batch(batch_size).repeat().prefetch(2))
    runs, models, weights = {}, {}, None
    for ar_fraction in AR_FRACTIONS:
        keras.utils.set_random_seed(0)
        backbone = DualBackbone(
            vocabulary_size=CONFIG["vocabulary_size"], num_layers=CONFIG["num_layers"],
            num_heads=CONFIG["num_heads"], hidden_dim=CONFIG["hidden_dim"],
            intermediate_dim=CONFIG["intermediate_dim"], max_sequence_length=length)
        model = DualLM(backbone, ar_fraction=ar_fraction, seed=0)
        model.compile(optimizer=keras.optimizers.AdamW(3e-3))
        if weights is None:
            weights = backbone.get_weights()
        backbone.set_weights(weights)
        name = f"alpha={ar_fraction:g}"
        runs[name] = _common.fit_step_timer(model, dataset)
        runs[name](2)  # compiles
        models[name] = model
    timings = _common.interleaved(runs, rounds, steps)
    tokens = batch_size * length
    record = {"backend": backend, "threads": threads, "load_before": load_before}
    for name, timing in timings.items():
        record[name] = dict(timing, tokens_per_second=tokens / timing["median_step_seconds"])
    ar_step = timings["alpha=1"]["median_step_seconds"]
    for name in ("alpha=0.5", "alpha=0"):
        record[f"{name}_over_ar_step"] = timings[name]["median_step_seconds"] / ar_step
    if backend == "torch":
        token_ids = keras.ops.convert_to_tensor(rows[:batch_size])
        document_ids = keras.ops.convert_to_tensor(documents[:batch_size])
        for name, model in models.items():
            seconds = _masking_seconds(model, token_ids, document_ids)
            record[name]["masking_seconds"] = seconds
            record[name]["masking_share_of_step"] = seconds / timings[name]["median_step_seconds"]
    record["load_after"] = _common.machine()["load_average"]
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(_common.BACKENDS),
                        choices=_common.BACKENDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    for name in ("vocabulary_size", "sequence_length", "batch_size"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=CONFIG[name])
    parser.add_argument("--output")
    parser.add_argument("--child", choices=_common.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = {name: getattr(args, name) for name in ("vocabulary_size", "sequence_length", "batch_size")}
    if min(args.threads, args.rounds, args.steps) < 1:
        parser.error(f"--threads, --rounds, --steps must be >= 1; received "
                     f"{args.threads}, {args.rounds}, {args.steps}")
    if args.child:
        run_child(args.child, args.threads, args.rounds, args.steps, config)
        return 0
    records = []
    for backend in args.backends:
        records += _common.run_child(__file__, backend, [
            "--threads", args.threads, "--rounds", args.rounds, "--steps", args.steps,
            *[f"--{name.replace('_', '-')}={value}" for name, value in config.items()]])
    CONFIG.update(config)
    print(f"\nfit() step time by α, {CONFIG}, AdamW, {args.threads} thread(s); medians of "
          f"{args.rounds} x {args.steps} interleaved steps")
    print(f"{'backend':<11} {'α=1 tok/s':>10} {'α=0.5 tok/s':>11} {'α=0 tok/s':>10} "
          f"{'0.5/1 step':>10} {'0/1 step':>8} {'masking % (0.5)':>15} {'load':>12}")
    for r in records:
        share = r["alpha=0.5"].get("masking_share_of_step")
        print(f"{r['backend']:<11} {r['alpha=1']['tokens_per_second']:>10,.0f} "
              f"{r['alpha=0.5']['tokens_per_second']:>11,.0f} {r['alpha=0']['tokens_per_second']:>10,.0f} "
              f"{r['alpha=0.5_over_ar_step']:>10.3f} {r['alpha=0_over_ar_step']:>8.3f} "
              f"{'-' if share is None else f'{share:.1%}':>15} "
              f"{r['load_before'][0]:>5.1f}->{r['load_after'][0]:<5.1f}")
    _common.write_results("dual_vs_ar_step", {
        "config": CONFIG, "threads": args.threads, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
