"""Where a PyTorch `fit()` step's time goes, next to the hand-written loop's (issue 12, goal 1).

Runs `torch.profiler` over a few training steps of `DualLM.fit()` (α = 1 and 0.5) and of
the hand-written eager loop of `handwritten_loops.py` (same weights, same batch,
1 thread by default), and prints for each: wall ms per step, the ms spent inside
PyTorch operators (self CPU time summed), the rest (Python: Keras layers, callbacks,
tf.data hand-over), and the operators that take the most time. Optionally the top
entries of a cProfile of the fit step (`--cprofile`).

    python benchmarks/profile_torch_step.py --steps 4

Writes `benchmarks/results/profile_torch_step.json`.
"""

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import handwritten_loops as loops  # noqa: E402


def _profile(step, steps, top, by_shape=False):
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=by_shape) as profiler:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - started) / steps
    events = [e for e in profiler.key_averages() if not e.key.startswith("ProfilerStep")]
    # Self times of aten operators only: autograd and profiler wrappers nest them.
    aten = [e for e in events if e.key.startswith("aten::")]
    operator_seconds = sum(e.self_cpu_time_total for e in aten) / 1e6 / steps
    ranked = sorted(aten, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    del torch
    shapes = []
    if by_shape:  # which tensors the calls of the top operators work on
        names = {e.key for e in ranked[:4]}
        grouped = [e for e in profiler.key_averages(group_by_input_shape=True) if e.key in names]
        grouped.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
        shapes = [{"name": e.key, "input_shapes": str(e.input_shapes),
                   "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                   "calls_per_step": e.count / steps} for e in grouped[:top * 2]]
    return {
        "by_input_shape": shapes,
        "wall_ms_per_step": wall * 1e3,
        "operator_ms_per_step": operator_seconds * 1e3,
        "other_ms_per_step": (wall - operator_seconds) * 1e3,
        "top_operators": [
            {"name": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "calls_per_step": e.count / steps}
            for e in ranked
        ],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--by-shape", action="store_true",
                        help="also rank the top operators' calls by input shape")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    _common.start_backend("torch", args.threads)
    import numpy as np

    config = loops.CONFIG
    rng = np.random.default_rng(0)
    batch = rng.integers(5, config["vocabulary_size"],
                         (config["batch_size"], config["sequence_length"])).astype("int32")
    results = {"machine": _common.machine(), "threads": args.threads}
    weights = None
    for ar_fraction in (1.0, 0.5):
        model = loops.build_pilot_model(ar_fraction)
        weights = weights or loops.keras_weights(model.backbone)
        model.fit(batch, batch_size=len(batch), epochs=1, verbose=0, shuffle=False)

        def fit_step(model=model):
            # The step fit() runs, without fit()'s per-call set-up: its train_function
            # on an iterator of one batch.
            logs = model.train_function([(batch,)])
            float(logs["loss"])

        results[f"fit alpha={ar_fraction:g}"] = _profile(fit_step, args.steps, args.top, args.by_shape)
        if args.cprofile and ar_fraction == 1.0:
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [fit_step() for _ in range(args.steps)])
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
            results["cprofile_fit_alpha=1"] = stream.getvalue()
    loop, _ = loops.torch_loop(weights, [batch])
    results["hand-written loop"] = _profile(loop, args.steps, args.top, args.by_shape)
    for name, r in results.items():
        if not isinstance(r, dict) or "wall_ms_per_step" not in r:
            continue
        print(f"\n{name}: {r['wall_ms_per_step']:.1f} ms/step = {r['operator_ms_per_step']:.1f} ms "
              f"in aten operators + {r['other_ms_per_step']:.1f} ms other (Python, dispatch)")
        for e in r["top_operators"]:
            print(f"  {e['name']:<40} {e['ms_per_step']:>8.2f} ms  {e['calls_per_step']:>6.0f} calls")
        for e in r["by_input_shape"]:
            print(f"    {e['name']:<20} {e['input_shapes'][:70]:<70} {e['ms_per_step']:>7.2f} ms "
                  f"{e['calls_per_step']:>5.0f} calls")
    if "cprofile_fit_alpha=1" in results:
        print(results["cprofile_fit_alpha=1"])
    _common.write_results("profile_torch_step", results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
