"""PyTorch training step: `jit_compile=True` (`torch.compile`) against eager (issue 28, item 3).

Builds the same `DualLM` twice with the same weights — one compiled with
`jit_compile=False` (eager, what `"auto"` resolves to on torch), one with
`jit_compile=True` (Keras wraps the train step in `torch.compile`) — and measures:

- the first `fit()` call of each (one step: for the compiled model that is tracing
  and Inductor's C++ compilation; `compile_seconds` is its excess over an eager step);
- steady-state steps, timed interleaved (eager, compiled, eager, ...; medians of
  per-step wall and process CPU times);
- the break-even: how many steps the compiled step needs to repay its compilation.

Usage (repository root; compilation takes minutes on a small CPU):

    python benchmarks/torch_compile_step.py --threads 1
    python benchmarks/torch_compile_step.py --preset tiny --ar-fraction 1.0

Writes `benchmarks/results/torch_compile_step.json`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import handwritten_loops as loops  # noqa: E402


def build_model(ar_fraction, jit_compile, weights=None):
    """The pilot-shaped `DualLM` of `handwritten_loops`, compiled with `jit_compile`."""
    model = loops.build_pilot_model(ar_fraction, jit_compile)
    if weights is not None:
        model.set_weights(weights)
    return model


def measure(ar_fraction, rounds, steps):
    import numpy as np
    import tensorflow as tf

    config = loops.CONFIG
    rng = np.random.default_rng(0)
    rows = rng.integers(5, config["vocabulary_size"],
                        (8 * config["batch_size"], config["sequence_length"])).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(config["batch_size"]).repeat()
    eager = build_model(ar_fraction, False)
    compiled = build_model(ar_fraction, True, eager.get_weights())
    record = {"ar_fraction": ar_fraction, "load_before": _common.machine()["load_average"]}
    first_seconds = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
        first_seconds[name] = time.perf_counter() - started
    cpu_seconds = {"eager": [], "compiled": []}
    runs = {name: _common.fit_step_timer(model, dataset, cpu_seconds[name])
            for name, model in (("eager", eager), ("compiled", compiled))}
    timings = _common.interleaved(runs, rounds, steps)
    eager_step = timings["eager"]["median_step_seconds"]
    compiled_step = timings["compiled"]["median_step_seconds"]
    compile_seconds = first_seconds["compiled"] - first_seconds["eager"]
    saving = eager_step - compiled_step
    record.update(
        first_fit_seconds=first_seconds,
        compile_seconds=compile_seconds,
        median_step_seconds={"eager": eager_step, "compiled": compiled_step},
        median_step_cpu_seconds={name: statistics.median(values)
                                 for name, values in cpu_seconds.items()},
        compiled_speedup=eager_step / compiled_step,
        break_even_steps=(compile_seconds / saving) if saving > 0 else None,
        load_after=_common.machine()["load_average"],
        step_seconds={name: timing["step_seconds"] for name, timing in timings.items()},
    )
    record["compiled_speedup_cpu"] = (record["median_step_cpu_seconds"]["eager"]
                                      / record["median_step_cpu_seconds"]["compiled"])
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ar-fraction", type=float, nargs="+", default=[0.5])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.steps) < 1:
        parser.error(f"--threads, --rounds and --steps must be >= 1; received "
                     f"{args.threads}, {args.rounds}, {args.steps}")
    _common.start_backend("torch", args.threads)
    records = [measure(alpha, args.rounds, args.steps) for alpha in args.ar_fraction]
    tokens = loops.CONFIG["batch_size"] * loops.CONFIG["sequence_length"]
    print(f"\nPyTorch fit(): jit_compile=True vs eager, {loops.CONFIG}, {args.threads} thread(s); "
          f"medians of {args.rounds} x {args.steps} interleaved steps")
    print(f"{'alpha':>5} {'eager tok/s':>11} {'compiled tok/s':>14} {'speed-up':>8} {'(CPU)':>6} "
          f"{'compile s':>9} {'break-even steps':>16} {'load':>12}")
    for r in records:
        steps = r["median_step_seconds"]
        even = "never" if r["break_even_steps"] is None else f"{r['break_even_steps']:.0f}"
        print(f"{r['ar_fraction']:>5g} {tokens / steps['eager']:>11,.0f} "
              f"{tokens / steps['compiled']:>14,.0f} {r['compiled_speedup']:>8.2f} "
              f"{r['compiled_speedup_cpu']:>6.2f} {r['compile_seconds']:>9.0f} {even:>16} "
              f"{r['load_before'][0]:>5.1f}->{r['load_after'][0]:<5.1f}")
    _common.write_results("torch_compile_step", {
        "config": loops.CONFIG, "threads": args.threads, "rounds": args.rounds,
        "steps": args.steps, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
