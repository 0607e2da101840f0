"""What the run machinery costs: `train()` vs a bare `fit()` on the `small` preset (issue 12, goal 3).

Both sides build the same model from the same `RunSpec` (the CLI's `small` preset with
the built-in corpus, α = 0.5, Muon + AdamW under warmup-stable-decay) and train it for
the same steps on the same batches:

- `fit`: `model.fit(dataset, steps_per_epoch=total_steps, epochs=1, verbose=0)`;
- `train`: `keras_dualobj.training.train` as `keras-dualobj train` calls it — log
  segments of 10 steps, the progress line (to a null stream), CSV and TensorBoard logs,
  the NaN stop, checkpoints and held-out evaluations (AR loss + MD ELBO) about four
  times per run plus the final one, and the final `model.keras`.

Each measurement starts from a freshly built model (compilation included on both
sides), and the two alternate (fit, train, fit, train, ...); the figure is the ratio
of the medians of the wall times. The run also splits `train()`'s extra time into the
held-out evaluations (timed by a callback around `evaluate`) and the rest.

Usage (repository root):

    python benchmarks/callbacks_overhead.py --backends tensorflow --steps 40 --rounds 2

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


def run_child(backend, threads, rounds, steps, eval_batches):
    _common.start_backend(backend, threads)
    import json

    import keras

    from keras_dualobj.data import make_training_dataset
    from keras_dualobj.training import RunSpec
    from keras_dualobj.training import train

    load_before = _common.machine()["load_average"]
    spec = RunSpec(preset="small", source="builtin", seed=0).resolved()
    data = spec.prepare_data(verbose=False)
    total_steps = min(steps, data.plan.total_steps)
    log_every = 10
    eval_every = log_every * max(1, round(total_steps / (4 * log_every)))

    def fresh_model():
        keras.utils.set_random_seed(0)
        model = spec.build_model(tokenizer=data.tokenizer)
        spec.compile(model, data.plan.total_steps)
        return model

    def dataset(start_step=0):
        return make_training_dataset(data.train_rows, data.plan, seed=0, start_step=start_step)

    class StepEnds(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    def bare_fit():
        model = fresh_model()
        timer = StepEnds()
        started = time.perf_counter()
        model.fit(dataset(), steps_per_epoch=total_steps, epochs=1, verbose=0, callbacks=[timer])
        float(model.get_metrics_result()["loss"])
        wall = time.perf_counter() - started
        # Steps after the first (which includes compilation), including the final wait.
        step_seconds = (started + wall - timer.ends[1]) / max(1, total_steps - 1)
        return wall, step_seconds

    def full_train():
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
                  validation_data=data.validation_dataset, validation_steps=eval_batches,
                  log_every=log_every, eval_every=eval_every, checkpoint_every=eval_every,
                  stream=io.StringIO())
            return time.perf_counter() - started, evaluations

    walls = {"fit": [], "fit_step": [], "train": [], "train_evaluation": [], "evaluate_calls": []}
    for _ in range(rounds):
        wall, step_seconds = bare_fit()
        walls["fit"].append(wall)
        walls["fit_step"].append(step_seconds)
        seconds, evaluations = full_train()
        walls["train"].append(seconds)
        walls["train_evaluation"].append(sum(evaluations))
        walls["evaluate_calls"].append(evaluations)
    fit_median, train_median = statistics.median(walls["fit"]), statistics.median(walls["train"])
    evaluation_median = statistics.median(walls["train_evaluation"])
    step_median = statistics.median(walls["fit_step"])
    calls = walls["evaluate_calls"][-1]
    first_call = statistics.median(c[0] for c in walls["evaluate_calls"])
    later_call = statistics.median(x for c in walls["evaluate_calls"] for x in c[1:]) if len(calls) > 1 else first_call
    other = train_median - evaluation_median - fit_median
    # The preset's whole run: 128 steps, an evaluation every 30 (the CLI's "about four
    # per run") plus the final one = 5, as many checkpoints as here (about 4).
    full_steps, full_evaluations = 128, 5
    fit_full = fit_median + (full_steps - total_steps) * step_median
    evaluation_full = first_call + (full_evaluations - 1) * later_call
    record = {
        "backend": backend, "threads": threads, "steps": total_steps, "rounds": rounds,
        "eval_every": eval_every, "eval_batches": eval_batches,
        "validation_rows": int(len(data.validation_rows.token_ids)),
        "tokens_per_step": spec.tokens_per_step, "walls": walls,
        "train_over_fit": train_median / fit_median,
        "evaluation_share_of_train": evaluation_median / train_median,
        "train_over_fit_without_evaluation": (train_median - evaluation_median) / fit_median,
        "fit_step_seconds": step_median, "evaluate_first_call_seconds": first_call,
        "evaluate_later_call_seconds": later_call, "evaluations": len(calls),
        "other_overhead_seconds": other,
        "predicted_128_step_run": {
            "fit_seconds": fit_full, "evaluation_seconds": evaluation_full,
            "evaluation_over_fit": evaluation_full / fit_full,
            "callbacks_over_fit": other / fit_full,
        },
        "load_before": load_before, "load_after": _common.machine()["load_average"],
    }
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow"], choices=_common.BACKENDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40,
                        help="steps per run (the preset's whole run is 128; the table extrapolates to it)")
    parser.add_argument("--eval-batches", type=int, default=None,
                        help="held-out batches per evaluation (default: all, as the CLI)")
    parser.add_argument("--output")
    parser.add_argument("--child", choices=_common.BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.steps) < 1:
        parser.error(f"--threads, --rounds, --steps must be >= 1; received "
                     f"{args.threads}, {args.rounds}, {args.steps}")
    extra = [] if args.eval_batches is None else ["--eval-batches", args.eval_batches]
    if args.child:
        run_child(args.child, args.threads, args.rounds, args.steps, args.eval_batches)
        return 0
    records = []
    for backend in args.backends:
        records += _common.run_child(__file__, backend, [
            "--threads", args.threads, "--rounds", args.rounds, "--steps", args.steps] + extra)
    print(f"\ntrain() vs bare fit(), preset small, {args.steps} steps, medians of {args.rounds} "
          "alternating runs (compilation included on both sides)")
    print(f"{'backend':<11} {'fit s':>7} {'train s':>8} {'train/fit':>9} {'eval s':>7} "
          f"{'other s':>7} | 128-step run: {'eval/fit':>8} {'callbacks/fit':>13} {'load':>12}")
    for r in records:
        full = r["predicted_128_step_run"]
        print(f"{r['backend']:<11} {statistics.median(r['walls']['fit']):>7.1f} "
              f"{statistics.median(r['walls']['train']):>8.1f} {r['train_over_fit']:>9.3f} "
              f"{statistics.median(r['walls']['train_evaluation']):>7.1f} "
              f"{r['other_overhead_seconds']:>7.1f} | {'':>13} {full['evaluation_over_fit']:>8.1%} "
              f"{full['callbacks_over_fit']:>13.1%} "
              f"{r['load_before'][0]:>5.1f}->{r['load_after'][0]:<5.1f}")
    _common.write_results("callbacks_overhead", {
        "threads": args.threads, "machine": _common.machine(), "results": records,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
