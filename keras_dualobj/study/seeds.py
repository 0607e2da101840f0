"""Several seeds per (α, R) cell: means, spreads and which differences exceed them.

A multi-seed study trains every (α, R) cell once per seed (initialisation, masks and
data order change; the held-out rows do not). Tables and plots show the mean over
seeds and the sample standard deviation; a difference between two cells is called
*beyond the seed spread* when its mean exceeds the sum of the two cells' standard
deviations **and** it has the same sign for every seed (paired by seed, since all cells
share the held-out rows). With one seed nothing is beyond the spread.
"""

import dataclasses
import math

import numpy as np

from keras_dualobj.study.paper import paper_ar_fraction
from keras_dualobj.study.results import CellResult  # noqa: F401 (docstring example)
from keras_dualobj.study.results import format_fraction
from keras_dualobj.study.results import metric_value

# `final_prefix_loss` and `final_ar_suffix_loss` score the same tokens (each row's second
# half); `final_ar_loss` scores every next-token target of a row.
METRICS = ("final_ar_loss", "final_md_pll", "final_md_elbo", "final_prefix_loss",
           "final_ar_suffix_loss", "best_ar_loss", "best_md_elbo")
# The faces of the seed table, the paper's metrics first (the MD PLL where measured).
FACE_LABELS = {"final_ar_loss": "AR loss", "final_md_pll": "MD PLL", "final_md_elbo": "MD ELBO"}
_AVERAGED = METRICS + ("best_ar_loss_epoch", "wall_seconds")


def group_by_cell(results):
    """`{(α, R): {seed: CellResult}}`; a repeated (α, R, seed) is an error."""
    groups = {}
    for result in results:
        cell = groups.setdefault((result.ar_fraction, result.repetitions), {})
        if result.seed in cell:
            raise ValueError(
                f"Two results for α={result.ar_fraction:g}, R={result.repetitions}, "
                f"seed={result.seed}; each (α, R, seed) must appear once."
            )
        cell[result.seed] = result
    return groups


def seed_statistics(results, metric="final_ar_loss"):
    """Mean, sample standard deviation and values of `metric` over seeds, per (α, R).

    Returns:
        `{(α, R): {"mean", "std", "n", "values": {seed: value}}}`; `std` is 0 with
        one seed (ddof = 1 otherwise).

    Example:
    >>> cells = [CellResult(0.5, 4, 100, 400, 10, s, l, l, 1.0, l, l, l, 1.0)
    ...          for s, l in [(0, 2.0), (1, 2.2)]]
    >>> stats = seed_statistics(cells)[(0.5, 4)]
    >>> round(stats["mean"], 3), round(stats["std"], 4), stats["n"]
    (2.1, 0.1414, 2)
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; accepted are {list(METRICS)}.")
    statistics = {}
    for key, by_seed in group_by_cell(results).items():
        values = np.array([metric_value(by_seed[s], metric) for s in sorted(by_seed)], "float64")
        statistics[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "n": int(values.size),
            "values": {s: float(v) for s, v in zip(sorted(by_seed), values)},
        }
    return statistics


def _mean_curve(curves):
    length = min(len(curve) for curve in curves)
    return [
        {
            name: float(np.mean([curve[i][name] for curve in curves]))
            for name in curves[0][i]
        }
        for i in range(length)
    ]


def _mean(values):
    """The mean, or `None` where a cell did not measure the metric (an older results file)."""
    return None if any(v is None for v in values) else float(np.mean(values))


def mean_results(results):
    """One `CellResult` per (α, R): losses, epochs, times and curves averaged over seeds.

    Its `seed` is the smallest seed averaged. With one seed per cell the results are
    returned as they are (copies).
    """
    merged = []
    for (ar_fraction, repetitions), by_seed in sorted(
        group_by_cell(results).items(), key=lambda item: (item[0][1], item[0][0])
    ):
        cells = [by_seed[s] for s in sorted(by_seed)]
        means = {name: _mean([getattr(c, name) for c in cells]) for name in _AVERAGED}
        merged.append(
            dataclasses.replace(cells[0], **means, curve=_mean_curve([c.curve for c in cells]))
            if len(cells) > 1
            else dataclasses.replace(cells[0])
        )
    return merged


def compare_cells(statistics, first, second):
    """`first` minus `second` (two (α, R) keys of `seed_statistics`).

    Returns:
        dict with `difference` (of the means), `spread` (sum of the two standard
        deviations), `paired` (per shared seed differences) and `beyond_spread`
        (see the module docstring).

    Example:
    >>> stats = {(0, 1): {"mean": 2.0, "std": 0.01, "n": 2, "values": {0: 2.0, 1: 2.0}},
    ...          (1, 1): {"mean": 2.5, "std": 0.02, "n": 2, "values": {0: 2.49, 1: 2.51}}}
    >>> compare_cells(stats, (0, 1), (1, 1))["beyond_spread"]
    True
    """
    a, b = statistics[first], statistics[second]
    shared = sorted(set(a["values"]) & set(b["values"]))
    paired = [a["values"][s] - b["values"][s] for s in shared]
    difference = a["mean"] - b["mean"]
    spread = a["std"] + b["std"]
    same_sign = bool(paired) and (all(p < 0 for p in paired) or all(p > 0 for p in paired))
    return {
        "difference": difference,
        "spread": spread,
        "paired": paired,
        "beyond_spread": bool(min(a["n"], b["n"]) > 1 and abs(difference) > spread and same_sign),
    }


def _face_cells(statistics, repetitions, metric):
    row = {a: s for (a, r), s in statistics.items() if r == repetitions and math.isfinite(s["mean"])}
    if not row:
        return None
    best = min(row, key=lambda a: row[a]["mean"])
    parts = [f"{format_fraction(best):>6} {row[best]['mean']:6.3f}±{row[best]['std']:.3f}"]
    for end in (0.0, 1.0):
        if end not in row or end == best:
            parts.append(f"{'—':>15}")
            continue
        comparison = compare_cells(statistics, (best, repetitions), (end, repetitions))
        mark = "*" if comparison["beyond_spread"] else " "
        parts.append(f"{comparison['difference']:+7.3f}±{comparison['spread']:.3f}{mark}")
    return " ".join(parts)


def seed_summary_table(results):
    """Best α per R (mean ± std over seeds) on each face's loss, vs both ends.

    The faces are the AR loss, the MD PLL (the paper's MD-face metric; left out when no
    cell measured it) and the MD ELBO. `*` marks a difference beyond the seed spread
    (see the module docstring).

    Example:
    >>> cells = [CellResult(a, 4, 100, 400, 10, s, l + s / 100, l, 1.0, l + 1, l + 1, l, 1.0)
    ...          for s in (0, 1) for a, l in [(0.0, 3.0), (0.5, 2.0), (1.0, 2.5)]]
    >>> print(seed_summary_table(cells).splitlines()[-1])
      4 |    1/2  2.005±0.007  -1.000±0.014*  -0.500±0.014* |    1/2  3.000±0.000  -1.000±0.000*  -0.500±0.000* |   63/64
    """
    faces = [metric for metric in FACE_LABELS
             if any(math.isfinite(metric_value(r, metric)) for r in results)]
    by_metric = {metric: seed_statistics(results, metric) for metric in faces}
    seeds = sorted({r.seed for r in results})
    lines = [
        f"Held-out losses (nats/token), mean ± sample std over seeds {seeds}; "
        "'vs' = best minus that end ± the sum of the two stds;",
        "* = beyond the seed spread (|difference| > that sum and the same sign for every seed).",
        "",
        "  R | " + "| ".join(f"{'best α (' + FACE_LABELS[m] + ')':<19} vs α=0          vs α=1          "
                            for m in faces) + "| paper α",
    ]
    for repetitions in sorted({r.repetitions for r in results}):
        row = [f"{repetitions:>3}"]
        for metric in faces:
            row.append(_face_cells(by_metric[metric], repetitions, metric) or "n/a")
        row.append(f"{format_fraction(paper_ar_fraction(repetitions)):>7}")
        lines.append(" | ".join(row))
    return "\n".join(lines)
