"""What the run machinery costs: `train()` vs a bare `fit()` on the `small` preset (issue 12,
goal 3), and what its held-out evaluations cost before and after issue 26 (item 5).

All sides build the same model from the same `RunSpec` (the CLI's `small` preset with
the built-in corpus, α = 0.5, Muon + AdamW under warmup-stable-decay) and train it for
the same steps on the same batches:

- `fit`: `model.fit(dataset, steps_per_epoch=total_steps, epochs=1, verbose=0)`;
- `train`: `keras_dualobj.training.train` as `keras-dualobj train` calls it by default —
  log segments of 10 steps, the progress line (to a null stream), CSV and TensorBoard
  logs, the NaN stop, checkpoints, about four periodic held-out evaluations (AR loss +
  MD ELBO) on `EVALUATION_BATCHES` batches, the final one on the whole held-out split,
  and the final `model.keras`;
- `train_whole`: the same with the old default, every evaluation on the whole split
  (`validation_steps=None`).

Each measurement starts from a freshly built model (compilation included on every
side), and they alternate (fit, train, train_whole, fit, ...); the figures are ratios of
the medians of the wall times. Every `evaluate` call is timed (a wrapper around
`evaluate`, which `fit` calls for its periodic evaluations too) and split three ways:

- compilation: the first call's time less a later periodic call's (the same batches),
  paid once per run by whichever evaluation comes first — without periodic
  evaluations the final one would pay it;
- periodic: the periodic calls less that compilation, what they add to the run;
- final: the whole split at the end (the run's result).

The default is the preset's whole run (128 steps).

Usage (repository root):

    python benchmarks/callbacks_overhead.py --backends tensorflow --steps 128 --rounds 2

Writes `benchmarks/results/callbacks_overhead.json`.
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def evaluation_parts(calls, has_final):
    """Seconds of a run's `evaluate` calls: `compile` (the first call less the median
    later periodic one), `periodic` (the periodic calls less that), `final`, `total`."""
    periodic, final = (calls[:-1], calls[-1]) if has_final else (calls, 0.0)
    compile_seconds = max(0.0, periodic[0] - statistics.median(periodic[1:])) if len(
        periodic) > 1 else 0.0
    return {"compile": compile_seconds, "periodic": sum(periodic) - compile_seconds,
            "final": final, "total": sum(calls)}


def run_child(backend, threads, rounds, steps):
    _common.start_backend(backend, threads)
    import json

    import keras

    from keras_dualobj.data import make_training_dataset
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training import train
    from keras_dualobj.training.evaluation_schedule import EVALUATION_BATCHES
    from keras_dualobj.training.evaluation_schedule import default_eval_every

    load_before = _common.machine()["load_average"]
    spec = RunSpec(preset="small", source="builtin", seed=0).resolved()
    data = spec.prepare_data(verbose=False)
    total_steps = min(steps, data.plan.total_steps)
    log_every = 10
    eval_every = default_eval_every(total_steps, log_every)

    def fresh_model():
        keras.utils.set_random_seed(0)
        model = spec.build_model(tokenizer=data.tokenizer)
        spec.compile(model, data.plan.total_steps)
        return model

    def dataset(start_step=0):
        return make_training_dataset(data.train_rows, data.plan, seed=0, start_step=start_step)

    def bare_fit():
        model = fresh_model()
        started = time.perf_counter()
        model.fit(dataset(), steps_per_epoch=total_steps, epochs=1, verbose=0)
        float(model.get_metrics_result()["loss"])
        return time.perf_counter() - started, []

    def full_train(validation_steps):
        model = fresh_model()
        evaluations = []
        original = model.evaluate

        def timed_evaluate(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                evaluations.append(time.perf_counter() - started)

        model.evaluate = timed_evaluate
        with tempfile.TemporaryDirectory() as output_dir:
            started = time.perf_counter()
            train(model, dataset, total_steps, output_dir, tokens_per_step=spec.tokens_per_step,
                  validation_data=data.validation_dataset, validation_steps=validation_steps,
                  log_every=log_every, eval_every=eval_every, stream=io.StringIO())
            return time.perf_counter() - started, evaluations

    cases = {"fit": bare_fit, "train": lambda: full_train(EVALUATION_BATCHES),
             "train_whole": lambda: full_train(None)}
    walls = {name: [] for name in cases}
    evaluate_calls = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            seconds, evaluations = case()
            walls[name].append(seconds)
            evaluate_calls[name].append(evaluations)
    median = {name: statistics.median(values) for name, values in walls.items()}
    # train_whole's final evaluation is its last periodic one (the same whole split).
    parts = {name: [evaluation_parts(calls, has_final=name == "train")
                    for calls in evaluate_calls[name]] for name in ("train", "train_whole")}
    evaluation = {name: {part: statistics.median(p[part] for p in parts[name])
                         for part in parts[name][0]} for name in parts}
    record = {
        "backend": backend, "threads": threads, "steps": total_steps, "rounds": rounds,
        "eval_every": eval_every, "eval_batches": EVALUATION_BATCHES,
        "validation_rows": int(len(data.validation_rows.token_ids)),
        "tokens_per_step": spec.tokens_per_step, "walls": walls, "evaluate_calls": evaluate_calls,
        "median_seconds": median, "evaluation_seconds": evaluation,
        **{f"{name}_over_fit": median[name] / median["fit"] for name in ("train", "train_whole")},
        **{f"{name}_{part}_over_fit": seconds / median["fit"]
           for name in evaluation for part, seconds in evaluation[name].items()},
        "load_before": load_before, "load_after": _common.machine()["load_average"],
    }
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow"], choices=_common.BACKENDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=128,
                        help="steps per run (default: the preset's whole run, 128)")
    parser.add_argument("--output")
    parser.add_argument("--child", choices=_common.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.steps) < 1:
        parser.error(f"--threads, --rounds, --steps must be >= 1; received "
                     f"{args.threads}, {args.rounds}, {args.steps}")
    if args.child:
        run_child(args.child, args.threads, args.rounds, args.steps)
        return 0
    records = []
    for backend in args.backends:
        records += _common.run_child(__file__, backend, [
            "--threads", args.threads, "--rounds", args.rounds, "--steps", args.steps])
    print(f"\ntrain() vs bare fit(), preset small, {args.steps} steps, medians of {args.rounds} "
          "alternating runs (compilation included on every side); held-out evaluations as "
          "shares of the bare fit(): compiling the evaluation (once per run), the periodic "
          "ones (less that), the final one")
    print(f"{'backend':<11} {'fit s':>6} | {'old: whole split every time':>40} | "
          f"{'new: few batches, whole split at the end':>52} | {'load':>11}")
    for r in records:
        old = f"train/fit {r['train_whole_over_fit']:.3f}, eval {r['train_whole_total_over_fit']:.1%}"
        new = (f"train/fit {r['train_over_fit']:.3f}, compile {r['train_compile_over_fit']:.1%}, "
               f"periodic {r['train_periodic_over_fit']:.1%}, final {r['train_final_over_fit']:.1%}")
        print(f"{r['backend']:<11} {r['median_seconds']['fit']:>6.1f} | {old:>40} | {new:>52} | "
              f"{r['load_before'][0]:>4.1f}->{r['load_after'][0]:<4.1f}")
    _common.write_results("callbacks_overhead", {
        "threads": args.threads, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
