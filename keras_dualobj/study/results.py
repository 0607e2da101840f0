"""One row per study cell, the files they are kept in, and the best α per R."""

import csv
import dataclasses
import json
import math
from pathlib import Path

from keras_dualobj.training.atomic_files import atomic_path
from keras_dualobj.training.atomic_files import atomic_write_text


@dataclasses.dataclass
class CellResult:
    """What one (α, R) cell of a repetition study measured.

    Losses are held-out, in nats per token: `ar_loss` the exact causal loss over every
    next-token target of a row, `md_elbo` the masked-diffusion bound (Monte-Carlo
    estimate). `final_prefix_loss` is the prefix-LM loss, which can only score the second
    half of each row (it attends both ways over the first), and `final_ar_suffix_loss`
    the causal loss on exactly those tokens: compare these two, not prefix-LM with
    `final_ar_loss` (`keras_dualobj.study.held_out`). `final_md_pll` is the paper's
    MD-face loss: minus the exact pseudo-log-likelihood per token of the same held-out
    rows, one token masked at a time (deterministic; not a bound, lower than the ELBO).
    `final_ar_suffix_loss` and `final_md_pll` are `None` in results written before they
    were measured (`keras_dualobj.study.cell_pll` recomputes the PLL from the cell's
    saved model). `curve` holds the held-out losses at every
    evaluation: `[{"step", "epoch", "ar_loss", "md_elbo"}, ...]`.
    """

    ar_fraction: float
    repetitions: int
    unique_tokens: int
    token_budget: int
    num_steps: int
    seed: int
    final_ar_loss: float
    best_ar_loss: float
    best_ar_loss_epoch: float
    final_md_elbo: float
    best_md_elbo: float
    final_prefix_loss: float
    wall_seconds: float
    curve: list = dataclasses.field(default_factory=list)
    # Last, with a default: older results files (and positional calls) stay valid.
    final_ar_suffix_loss: float = None
    final_md_pll: float = None

    @property
    def key(self):
        return cell_key(self.ar_fraction, self.repetitions)


CSV_FIELDS = [
    field.name for field in dataclasses.fields(CellResult) if field.name != "curve"
]


def cell_key(ar_fraction, repetitions, seed=None):
    """Directory-safe name of a cell, e.g. `alpha0.984375_R4` (`..._seed1` with a seed).

    Example:
    >>> cell_key(0.25, 4), cell_key(0.25, 4, seed=1)
    ('alpha0.25_R4', 'alpha0.25_R4_seed1')
    """
    key = f"alpha{ar_fraction:.6g}_R{repetitions}"
    return key if seed is None else f"{key}_seed{seed}"


def write_results(results, study_dir):
    """Writes `results.csv` (no curves) and `results.json` (with curves), sorted by R, α."""
    study_dir = Path(study_dir)
    results = sorted(results, key=lambda r: (r.repetitions, r.ar_fraction))
    # Atomic: a study killed while writing keeps the previous complete files.
    with atomic_path(study_dir / "results.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for result in results:
                row = dataclasses.asdict(result)
                row.pop("curve")
                writer.writerow(row)
    atomic_write_text(
        study_dir / "results.json",
        json.dumps([dataclasses.asdict(r) for r in results], indent=1),
    )


def read_results(study_dir):
    """Reads the cells of `results.json` in a study directory.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    path = Path(study_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No study results at {path}; run `keras-dualobj study --output {study_dir}` first."
        )
    with open(path) as handle:
        return [CellResult(**row) for row in json.load(handle)]


def metric_value(result, metric):
    """`result`'s `metric` as a float, NaN where it was not measured (`None`).

    Example:
    >>> metric_value(CellResult(0.5, 4, 100, 400, 10, 0, *[2.0] * 7), "final_ar_suffix_loss")
    nan
    """
    value = getattr(result, metric)
    return math.nan if value is None else float(value)


def pll_not_measured(missing, total):
    """Why a verdict on the MD face falls back to the ELBO: `missing` of `total` cells it
    reads have no held-out PLL (after `fill_held_out_pll`: no model to score it from).

    Example:
    >>> pll_not_measured(2, 6)
    'MD PLL not measured in 2 of 6 cells (results written before it, and no model.keras to score it from)'
    """
    return (f"MD PLL not measured in {missing} of {total} cells (results written before it, "
            "and no model.keras to score it from)")


def best_ar_fractions(results, metric="final_ar_loss"):
    """Per repetition level: the cell with the lowest `metric`, and the α = 0 / α = 1 cells.

    A cell that did not measure `metric` (`None`: results written before it) leaves its R
    without a best, since a best over part of the grid is not the grid's best; it is
    listed under `not_measured`. A measured NaN (a run that diverged) is never the best.

    Returns:
        `{R: {"best": CellResult | None, "ar_only": CellResult | None,
        "md_only": ... | None, "not_measured": [CellResult, ...]}}`.

    Example:
    >>> cells = [CellResult(a, 4, 100, 400, 10, 0, *[2.0 + a] * 7, final_md_pll=pll)
    ...          for a, pll in [(0.0, 1.5), (0.5, 1.4), (1.0, None)]]
    >>> best_ar_fractions(cells)[4]["best"].ar_fraction
    0.0
    >>> at_four = best_ar_fractions(cells, "final_md_pll")[4]
    >>> at_four["best"], [c.ar_fraction for c in at_four["not_measured"]]
    (None, [1.0])
    """
    summary = {}
    for repetitions in sorted({r.repetitions for r in results}):
        cells = [r for r in results if r.repetitions == repetitions]
        finite = [c for c in cells if math.isfinite(metric_value(c, metric))]
        not_measured = [c for c in cells if getattr(c, metric) is None]
        summary[repetitions] = {
            "best": min(finite, key=lambda c: getattr(c, metric)) if finite and not not_measured else None,
            "ar_only": next((c for c in cells if c.ar_fraction == 1.0), None),
            "md_only": next((c for c in cells if c.ar_fraction == 0.0), None),
            "not_measured": not_measured,
        }
    return summary


def format_fraction(value):
    """α as the paper writes it (63/64, 1/4, ...) when it is a power-of-two fraction.

    Example:
    >>> format_fraction(63 / 64), format_fraction(1.0), format_fraction(0.3)
    ('63/64', '1', '0.3')
    """
    if value in (0.0, 1.0):
        return f"{value:g}"
    for denominator in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        numerator = value * denominator
        if abs(numerator - round(numerator)) < 1e-9:
            return f"{round(numerator)}/{denominator}"
    return f"{value:.3g}"
