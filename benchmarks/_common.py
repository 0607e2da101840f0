"""Helpers shared by the performance benchmarks (docs/performance.md).

- one child process per backend (the Keras backend is fixed at import), started with
  the threads limited by `keras_dualobj.utils.threads.set_compute_threads`;
- interleaved timing: cases A, B, ... run in alternating rounds (A, B, A, B, ...)
  inside one process, and each case's figure is the median over its rounds, so that
  load drifting on a shared machine hits every case alike;
- the machine's load (`os.getloadavg`) recorded at the start and end of each child.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BACKENDS = ("tensorflow", "jax", "torch")


def start_backend(backend, threads):
    """Fixes the backend and its threads; call in a child before importing keras."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO_ROOT))
    from keras_dualobj.utils.threads import set_compute_threads

    set_compute_threads(threads)
    import keras  # noqa: F401  (imports the backend under the limit)

    set_compute_threads(threads)  # the frameworks now imported take it too


def run_child(script, backend, arguments, timeout=1800):
    """Runs `script --child BACKEND arguments...`; returns the JSON lines it printed."""
    command = [sys.executable, str(script), "--child", backend] + [str(a) for a in arguments]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=timeout
    )
    if completed.returncode:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"{backend} child failed with exit code {completed.returncode}")
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def interleaved(cases, rounds, steps):
    """Times `cases` in alternating rounds; returns name -> medians and raw times.

    `cases` maps a name to a function `run(steps)` that runs that many training steps
    and returns the seconds of each step it timed (waiting for each step's result).
    Each round runs every case in turn (A, B, A, B, ...); a case's figure is the
    median of its per-step seconds over all rounds.
    """
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            times[name].extend(run(steps))
    return {
        name: {"median_step_seconds": statistics.median(values),
               "step_seconds": [round(value, 5) for value in values]}
        for name, values in times.items()
    }


def timed_steps(step, steps, cpu_seconds=None):
    """Runs `step()` `steps` times; returns each call's seconds (`step` must block).

    With a list `cpu_seconds`, each call's process CPU time (all threads) is appended
    to it: on a shared machine it moves far less with the load than the wall time.
    """
    seconds = []
    for _ in range(steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        step()
        seconds.append(time.perf_counter() - started)
        if cpu_seconds is not None:
            cpu_seconds.append(time.process_time() - cpu_started)
    return seconds


def fit_step_timer(model, dataset, cpu_seconds=None):
    """A `run(steps)` for `interleaved` that times `model.fit` step by step.

    A callback waits for each step's loss and records the time between step ends;
    the first step of each `fit()` call (iterator and callback set-up) is left out
    and reported by the caller's total instead. With a list `cpu_seconds`, the
    process CPU time of each timed step is appended to it (see `timed_steps`).
    """
    import keras

    class StepEnds(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = [(time.perf_counter(), time.process_time())]

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])
            self.ends.append((time.perf_counter(), time.process_time()))

    def run(steps):
        timer = StepEnds()
        model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
        pairs = list(zip(timer.ends[1:-1], timer.ends[2:]))
        if cpu_seconds is not None:
            cpu_seconds.extend(b[1] - a[1] for a, b in pairs)
        return [b[0] - a[0] for a, b in pairs]

    return run


def machine():
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def write_results(name, payload, output=None):
    path = Path(output) if output else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")
    return path
