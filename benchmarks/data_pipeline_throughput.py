"""Data pipeline throughput vs the tiny model's training throughput, in one run.

The pipeline must deliver tokens at least 20x faster than `DualLM.fit()`
consumes them, so that data never limits training. Both figures are measured
here side by side, on the current Keras backend:

- pipeline: batches of `make_training_dataset` pulled as NumPy (what Keras
  does with a `tf.data.Dataset` on every backend), tokens/s;
- model: `DualLM.fit()` steps on the same dataset, tokens/s, timed from the
  end of the first step (compilation excluded).

Usage (from the repository root; `PYTHONPATH=.` unless the package is installed):

    KERAS_BACKEND=jax python benchmarks/data_pipeline_throughput.py \
        --output benchmarks/results/data_pipeline_jax.json

Writes a JSON record (default `benchmarks/results/data_pipeline_<backend>.json`)
and prints the ratio.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_dualobj import DualBackbone, DualLM  # noqa: E402
from keras_dualobj.data import prepare_data  # noqa: E402

GOAL_RATIO = 20.0


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batch_end_times = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_end_times.append(time.perf_counter())


def measure_pipeline(dataset, min_seconds, min_batches):
    """Tokens/s pulling NumPy batches; the dataset is re-iterated as needed."""
    tokens = batches = 0
    start = time.perf_counter()
    while True:
        for batch in dataset.as_numpy_iterator():
            tokens += batch["token_ids"].size
            batches += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and batches >= min_batches:
            return {"tokens_per_second": tokens / elapsed, "batches": batches,
                    "seconds": elapsed}


def measure_model(data, args):
    backbone = DualBackbone(
        vocabulary_size=data.tokenizer.vocabulary_size(),
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.sequence_length,
    )
    model = DualLM(backbone, tokenizer=data.tokenizer, ar_fraction=args.ar_fraction, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    timer = _StepTimer()
    steps = min(args.model_steps + 1, data.plan.total_steps)
    model.fit(data.train_dataset, epochs=1, steps_per_epoch=steps, shuffle=False,
              callbacks=[timer], verbose=0)
    times = timer.batch_end_times
    timed_steps = len(times) - 1
    elapsed = times[-1] - times[0]
    tokens = timed_steps * data.plan.batch_size * data.plan.sequence_length
    return {
        "tokens_per_second": tokens / elapsed,
        "steps": timed_steps,
        "seconds": elapsed,
        "parameters": int(backbone.count_params()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="builtin",
                        help="corpus source for prepare_data (default: builtin)")
    parser.add_argument("--local-copy", default=None,
                        help="local copy of the TFDS raw download (for --source tfds/auto)")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir")
    parser.add_argument("--tokenizer", default="bpe", choices=["bpe", "byte"])
    parser.add_argument("--vocabulary-size", type=int, default=2048)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repetitions", type=int, default=4)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--intermediate-dim", type=int, default=384)
    parser.add_argument("--ar-fraction", type=float, default=0.5)
    parser.add_argument("--model-steps", type=int, default=30,
                        help="timed training steps (after one untimed step)")
    parser.add_argument("--pipeline-seconds", type=float, default=3.0)
    parser.add_argument("--output", default=None,
                        help="JSON path (default benchmarks/results/data_pipeline_<backend>.json)")
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    output = Path(args.output or Path(__file__).parent / "results" /
                  f"data_pipeline_{backend}.json")

    start = time.perf_counter()
    data = prepare_data(
        args.source,
        local_copy=args.local_copy,
        data_dir=args.data_dir,
        tokenizer=args.tokenizer,
        vocabulary_size=args.vocabulary_size,
        sequence_length=args.sequence_length,
        batch_size=args.batch_size,
        repetitions=args.repetitions,
        seed=0,
    )
    preparation_seconds = time.perf_counter() - start

    pipeline = measure_pipeline(data.train_dataset, args.pipeline_seconds,
                                min_batches=data.plan.total_steps)
    model = measure_model(data, args)
    ratio = pipeline["tokens_per_second"] / model["tokens_per_second"]
    record = {
        "benchmark": "data_pipeline_throughput",
        "backend": backend,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "python": sys.version.split()[0],
        "keras": keras.__version__,
        "corpus": f"{data.corpus_source} ({data.corpus_origin})",
        "tokenizer": f"{args.tokenizer} ({data.tokenizer.vocabulary_size()} ids)",
        "sequence_length": args.sequence_length,
        "batch_size": args.batch_size,
        "plan": data.plan.describe(),
        "preparation_seconds": preparation_seconds,
        "pipeline": pipeline,
        "model": {**model, "num_layers": args.num_layers, "hidden_dim": args.hidden_dim,
                  "num_heads": args.num_heads, "intermediate_dim": args.intermediate_dim,
                  "ar_fraction": args.ar_fraction},
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2))
    print(
        f"[{backend}] corpus preparation {preparation_seconds:.1f} s; pipeline "
        f"{pipeline['tokens_per_second']:,.0f} tokens/s; model "
        f"({model['parameters']:,} parameters) {model['tokens_per_second']:,.0f} "
        f"tokens/s; ratio {ratio:,.0f}x (goal >= {GOAL_RATIO:.0f}x) -> {output}"
    )
    return 0 if ratio >= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
