"""Memory of a long study: resident memory (RSS) after each cell of one backend.

Runs `run_study` on a grid of `--cells` tiny cells (the `tiny` preset, rows of
`--sequence-length` tokens, `--steps` steps per cell, α spread over [0, 1], R = 1, the
built-in corpus) and records the process's RSS when each cell starts (after the
previous cell's clean-up) and at the end. The first cells pay one-off costs (imports,
first compilations, the data), so growth is measured as the slope of RSS over the
later cells (least squares over cells `--skip` onwards), in MB per cell.

    KERAS_BACKEND=tensorflow python benchmarks/study_memory.py
    KERAS_BACKEND=jax python benchmarks/study_memory.py --cells 20 --output results.json

Writes JSON to `--output` (default `benchmarks/results/study_memory_<backend>.json`).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from keras_dualobj.study import StudyConfig  # noqa: E402
from keras_dualobj.study import run_study  # noqa: E402
from keras_dualobj.study import runner  # noqa: E402


def rss_mb():
    return psutil.Process().memory_info().rss / 2**20


def growth_per_cell(rss, skip):
    """Least-squares slope of RSS (MB) over cells `skip, skip + 1, ...`."""
    later = np.asarray(rss[skip:], dtype="float64")
    if later.size < 2:
        return float("nan")
    return float(np.polyfit(np.arange(later.size), later, 1)[0])


def measure(cells, steps, sequence_length, batch_size, study_dir):
    readings = []
    run_cell = runner.run_cell

    def measured_cell(*args, **kwargs):
        readings.append(rss_mb())
        print(f"cell {len(readings)}: RSS {readings[-1]:.1f} MB", flush=True)
        return run_cell(*args, **kwargs)

    runner.run_cell = measured_cell
    try:
        config = StudyConfig(
            ar_fractions=tuple(np.linspace(0.0, 1.0, cells).tolist()),
            repetitions=(1,),
            token_budget=steps * batch_size * sequence_length,
            preset="tiny",
            source="builtin",
            sequence_length=sequence_length,
            batch_size=batch_size,
            evaluations=2,
            evaluation_batches=1,
            elbo_samples=1,
        )
        started = time.perf_counter()
        run_study(config, study_dir, stream=open(os.devnull, "w"))
        seconds = time.perf_counter() - started
    finally:
        runner.run_cell = run_cell
    readings.append(rss_mb())
    return readings, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip", type=int, default=3, help="first cells left out of the slope")
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. before/after)")
    parser.add_argument("--output")
    args = parser.parse_args()
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory() as study_dir:
        rss, seconds = measure(args.cells, args.steps, args.sequence_length, args.batch_size, study_dir)
    result = {
        "backend": backend,
        "label": args.label,
        "cells": args.cells,
        "steps_per_cell": args.steps,
        "rss_mb_at_cell_start": [round(value, 1) for value in rss[:-1]],
        "rss_mb_at_end": round(rss[-1], 1),
        "growth_mb_per_cell": round(growth_per_cell(rss, args.skip), 2),
        "slope_over_cells_from": args.skip,
        "wall_seconds": round(seconds, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "keras": keras.__version__,
    }
    output = Path(
        args.output or Path(__file__).parent / "results" / f"study_memory_{backend}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb_at_cell_start"}, indent=1))
    print("RSS at each cell start (MB):", result["rss_mb_at_cell_start"])


if __name__ == "__main__":
    main()
