"""Why two threads collapse on a busy machine: spin-waiting intra-op workers (issue 12, goal 6).

Times the hand-written eager PyTorch training step of `handwritten_loops.py` (the
pilot's model, random weights, no Keras in the child) in fresh processes under four
settings, round-robin (1 → 2 → ... → 1 → 2 ..., medians over rounds):

- `threads=1` and `threads=2`, each with OpenMP's default wait policy (a worker that
  reaches a barrier first spins for a while before sleeping), and
- the same with `OMP_WAIT_POLICY=PASSIVE` (workers sleep at once; libgomp honours it).

Optionally (`--busy N`) it first starts N busy-looping processes of its own, so the
load is known rather than whatever the shared machine has. If two threads are slower
than one only while other processes hold the cores, and passive waiting removes most
of the loss, the collapse is oversubscription: each parallel operator ends at a
barrier; when one of the two workers has been descheduled by the OS, the other spins
at the barrier for its whole time slice, and a step runs hundreds of operators.

    python benchmarks/threads_under_load.py --rounds 3 --steps 4
    python benchmarks/threads_under_load.py --busy 2      # two competing spinners

Writes `benchmarks/results/threads_under_load.json`.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

SETTINGS = {
    "1 thread": {"threads": 1, "OMP_WAIT_POLICY": None},
    "2 threads": {"threads": 2, "OMP_WAIT_POLICY": None},
    "1 thread, passive wait": {"threads": 1, "OMP_WAIT_POLICY": "PASSIVE"},
    "2 threads, passive wait": {"threads": 2, "OMP_WAIT_POLICY": "PASSIVE"},
}


def run_child(threads, steps):
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import numpy as np
    import torch

    import handwritten_loops as loops

    torch.set_num_threads(threads)
    config = loops.CONFIG
    rng = np.random.default_rng(0)
    width, hidden, heads = config["hidden_dim"], config["intermediate_dim"], config["num_heads"]
    head_dim = width // heads

    def normal(*shape):
        return (rng.normal(size=shape) * 0.02).astype("float32")

    weights = {
        "embeddings": normal(config["vocabulary_size"], width),
        "reverse_embeddings": normal(width, config["vocabulary_size"]),
        "final_norm": np.ones(width, "float32"),
        "layers": [{
            "attention_norm": np.ones(width, "float32"), "query": normal(width, heads, head_dim),
            "key": normal(width, heads, head_dim), "value": normal(width, heads, head_dim),
            "output": normal(heads, head_dim, width), "feed_forward_norm": np.ones(width, "float32"),
            "gate": normal(width, hidden), "up": normal(width, hidden), "down": normal(hidden, width),
        } for _ in range(config["num_layers"])],
    }
    batch = rng.integers(5, config["vocabulary_size"],
                         (config["batch_size"], config["sequence_length"])).astype("int32")
    step, _ = loops.torch_loop(weights, [batch])
    step()
    seconds = _common.timed_steps(step, steps)
    print(json.dumps({"threads": torch.get_num_threads(), "step_seconds": seconds}), flush=True)


def _spin(stop_at):
    while time.time() < stop_at:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes to start first")
    parser.add_argument("--output")
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_threads:
        run_child(args.child_threads, args.steps)
        return 0
    spinners = [multiprocessing.Process(target=_spin, args=(time.time() + 3600,), daemon=True)
                for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    load_before = _common.machine()["load_average"]
    times = {name: [] for name in SETTINGS}
    try:
        for _ in range(args.rounds):
            for name, setting in SETTINGS.items():
                environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    [str(_common.REPO_ROOT), str(Path(__file__).resolve().parent)]))
                environment.pop("OMP_WAIT_POLICY", None)
                if setting["OMP_WAIT_POLICY"]:
                    environment["OMP_WAIT_POLICY"] = setting["OMP_WAIT_POLICY"]
                completed = subprocess.run(
                    [sys.executable, __file__, "--child-threads", str(setting["threads"]),
                     "--steps", str(args.steps)],
                    capture_output=True, text=True, env=environment, timeout=1200)
                if completed.returncode:
                    sys.stderr.write(completed.stderr[-3000:])
                    raise SystemExit(f"child {name} failed")
                line = [x for x in completed.stdout.splitlines() if x.startswith("{")][-1]
                times[name].extend(json.loads(line)["step_seconds"])
    finally:
        for spinner in spinners:
            spinner.terminate()
    tokens = _common_tokens()
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nhand-written eager torch step (pilot model), {args.busy} own busy processes, "
          f"load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'setting':<26} {'ms/step':>8} {'tokens/s':>9} {'vs 1 thread':>11}")
    for name, median in medians.items():
        print(f"{name:<26} {median * 1e3:>8.0f} {tokens / median:>9,.0f} "
              f"{medians['1 thread'] / median:>11.2f}")
    _common.write_results("threads_under_load", {
        "busy_processes": args.busy, "machine": _common.machine(), "load_before": load_before,
        "median_step_seconds": medians, "step_seconds": times,
    }, args.output)
    return 0


def _common_tokens():
    import handwritten_loops as loops

    return loops.CONFIG["batch_size"] * loops.CONFIG["sequence_length"]


if __name__ == "__main__":
    sys.exit(main())
